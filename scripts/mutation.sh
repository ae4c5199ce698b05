#!/usr/bin/env bash
# Mutation score of Kiln modules on the fast tests, one line per module:
#   scripts/mutation.sh [--sample N] [--show-survivors] MODULE...
#   e.g. scripts/mutation.sh --sample 100 backend/engine/build.py template/decode.py
# Runs mutmut 3 (the test extra) with at most 2 children; the work directory is .mutation/.
# Uses the active venv's python (or $PYTHON); see scripts/mutation.py for how it works.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python}" scripts/mutation.py "$@"
