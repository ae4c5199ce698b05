#!/usr/bin/env bash
# Run the README's two commands, verbatim, in a pristine Debian 12 (minbase plus python3,
# python3-pip, python3-venv, git and ca-certificates) made with debootstrap and `docker
# import`, on a fresh clone of this repository's HEAD.
#   - the first command (install in a venv, build the bundled example) runs whole;
#   - the second runs up to starting services: install-deps.sh (Debian packages, .venv),
#     activating .venv, then the unit tests; a container cannot run dockerd, sshd as a
#     service and the rest, which the full suite checks on the host.
# The container uses the host's network only to reach the package registries.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${KILN_PRISTINE_IMAGE:-kiln-ci/debian12:pristine}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

log() { printf '[readme-on-debian] %s\n' "$*" >&2; }

mirror() {
    local f=/etc/apt/sources.list.d/debian.sources
    if [[ -r "$f" ]]; then
        awk '/^URIs:/ {print $2; exit}' "$f"
    else
        echo "http://deb.debian.org/debian"
    fi
}

make_image() {
    if docker image inspect "$IMAGE" >/dev/null 2>&1; then
        log "$IMAGE exists"
        return
    fi
    command -v debootstrap >/dev/null || apt-get -q -y -o DPkg::Lock::Timeout=600 install debootstrap >/dev/null
    local root
    root="$(mktemp -d /tmp/kiln-debian.XXXXXX)"
    log "debootstrap bookworm into $root"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,git,ca-certificates \
        bookworm "$root" "$(mirror)" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
    tar -C "$root" -c . | docker import --message "pristine Debian 12 for the README check" - "$IMAGE" >/dev/null
    rm -rf "$root" "$root.log"
}

readme_commands() {
    # The commands of the first ```sh block, comments left out.
    awk '/^```sh$/ {inside=1; next} inside && /^```$/ {exit} inside && $0 !~ /^#/ && NF' "$REPO_ROOT/README.md"
}

main() {
    make_image
    local first second pytest_cmd
    WORK="$(mktemp -d /tmp/kiln-readme.XXXXXX)"
    trap 'rm -rf "$WORK"' EXIT
    git clone --quiet "$REPO_ROOT" "$WORK/kiln"
    mapfile -t cmds < <(readme_commands)
    [[ ${#cmds[@]} -eq 2 ]] || { log "expected two commands in the README's first sh block, found ${#cmds[@]}"; exit 1; }
    first="${cmds[0]}"
    # Up to and including activating the venv, then its pytest command on the unit tests,
    # which need no services.
    second="${cmds[1]%%&& bash scripts/dockerd.sh*}"
    [[ "$second" != "${cmds[1]}" ]] || { log "the second command no longer starts dockerd where expected"; exit 1; }
    pytest_cmd="${cmds[1]##*&& }"
    [[ "$pytest_cmd" == *pytest* ]] || { log "the second command no longer ends with pytest"; exit 1; }
    second="$second&& $pytest_cmd tests/unit"
    log "first command: $first"
    log "second command, up to the services: $second"
    docker run --rm --network host \
        -v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" -e PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        -v "$WORK/kiln:/src:ro" "$IMAGE" bash -euo pipefail -c "
            cp -r /src /root/kiln && cd /root/kiln
            echo '--- first command'
            ( $first ) > /tmp/first.out 2>&1 || { cat /tmp/first.out; exit 1; }
            grep -q \"Build 'local' finished\" /tmp/first.out || { cat /tmp/first.out; exit 1; }
            tail -3 /tmp/first.out
            rm -rf .venv
            echo '--- second command'
            ( $second ) > /tmp/second.out 2>&1 || { tail -40 /tmp/second.out; exit 1; }
            tail -3 /tmp/second.out
        " 2>&1 | sed 's/^/    /'
    log "README commands work on pristine Debian 12"
}

main "$@"
