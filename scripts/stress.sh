#!/usr/bin/env bash
# Run the test suite as CI does (pytest -n 2, CI=true) with two CPU burners running beside
# it, so races that only show on a loaded machine show here. Stops at the first red round.
#
#   bash scripts/stress.sh [--rounds N] [pytest args...]     (default: 1 round, whole suite)
#
# Services (dockerd, the base image) must be up as for .ci/run; the burners are stopped
# when the script ends, however it ends.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=1
if [[ "${1:-}" == "--rounds" ]]; then
    rounds="${2:?--rounds needs a number}"
    shift 2
fi

export CI="${CI:-true}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

burners=()
stop_burners() {
    for pid in "${burners[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${burners[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_burners EXIT

for _ in 1 2; do
    # a busy loop in its own process: one core's worth of load each
    python3 -c 'while True: pass' &
    burners+=("$!")
done
echo "[stress] two CPU burners running (pids ${burners[*]}), ${rounds} round(s)"

for ((round = 1; round <= rounds; round++)); do
    start=$SECONDS
    set +e
    python3 -m pytest -n 2 -q -p no:cacheprovider "$@"
    rc=$?
    set -e
    echo "[stress] round ${round}/${rounds}: exit ${rc} after $((SECONDS - start))s"
    if ((rc == 5)); then
        echo "[stress] pytest collected no tests" >&2
    fi
    if ((rc != 0)); then
        exit "$rc"
    fi
done
echo "[stress] ${rounds} round(s) green under load"
