#!/usr/bin/env bash
# Install what Kiln's tests need on a Debian 12 machine (run as root). Idempotent:
# apt-get runs only when a package is missing, and then `apt-get update` runs once.
# Python packages go into the virtual environment .venv at the top of the repository
# (Debian's system Python refuses `pip install` outside one, PEP 668); activate it with
# `. .venv/bin/activate` to run the tests.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEB_PACKAGES=(packer docker.io openssh-server busybox-static docker-registry tmux)
VENV="$REPO_ROOT/.venv"

export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-deps] %s\n' "$*"; }

# Debian ships venv and ensurepip apart from python3.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    DEB_PACKAGES+=(python3-venv)
fi

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    log "debian packages: all present (${DEB_PACKAGES[*]})"
else
    if [[ "$(id -u)" != "0" ]]; then
        log "debian packages missing (${missing[*]}) and not root: cannot install" >&2
        exit 1
    fi
    # Another apt/dpkg may hold the lock (e.g. an unattended install): wait for it.
    apt_opts=(-q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef
              -o Dpkg::Options::=--force-confold)
    log "apt-get update (missing: ${missing[*]})"
    apt-get "${apt_opts[@]}" update >/tmp/kiln-apt-update.log 2>&1 \
        || { cat /tmp/kiln-apt-update.log >&2; exit 1; }
    log "apt-get install ${missing[*]}"
    apt-get "${apt_opts[@]}" install "${missing[@]}" \
        >/tmp/kiln-apt-install.log 2>&1 \
        || { cat /tmp/kiln-apt-install.log >&2; exit 1; }
fi

cd "$REPO_ROOT"
if [[ ! -x "$VENV/bin/python" ]]; then
    log "python3 -m venv .venv"
    python3 -m venv "$VENV"
fi
log "pip install -e '.[test]' into .venv"
"$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
    --root-user-action=ignore -e '.[test]'
log "done"
