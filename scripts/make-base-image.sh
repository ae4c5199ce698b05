#!/usr/bin/env bash
# Build the offline base image kiln/busybox:latest (nothing can be pulled on these
# machines) from Debian's busybox-static with `docker import`. Idempotent: does nothing
# if the image exists. Prints the image id on stdout.
set -euo pipefail

IMAGE="${KILN_BASE_IMAGE:-kiln/busybox:latest}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
LOCKFILE=/tmp/kiln-make-base-image.lock

log() { printf '[make-base-image] %s\n' "$*" >&2; }

image_id() { docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null; }

# Serialize concurrent callers (pytest-xdist workers, parallel CI steps).
exec 9>"$LOCKFILE"
flock -w 120 9 || { log "could not lock $LOCKFILE"; exit 1; }

if id="$(image_id)"; then
    log "$IMAGE exists"
    echo "$id"
    exit 0
fi

[[ -x "$BUSYBOX" ]] || { log "$BUSYBOX missing (apt-get install busybox-static)"; exit 1; }
if ! file_out="$(LC_ALL=C file -b "$BUSYBOX" 2>/dev/null)" || [[ "$file_out" != *"statically linked"* && "$file_out" != *"static-pie"* ]]; then
    # `file` may be absent; ldd is the fallback check for a static binary.
    if ldd "$BUSYBOX" >/dev/null 2>&1; then
        log "$BUSYBOX is dynamically linked; install busybox-static"; exit 1
    fi
fi

rootfs="$(mktemp -d /tmp/kiln-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

mkdir -p "$rootfs"/{bin,tmp,root,etc,var,usr/bin,home}
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
cp "$BUSYBOX" "$rootfs/bin/busybox"
chmod 0755 "$rootfs/bin/busybox"
count=0
for applet in $("$BUSYBOX" --list); do
    [[ "$applet" == "busybox" || -e "$rootfs/bin/$applet" ]] && continue
    ln -s busybox "$rootfs/bin/$applet"
    count=$((count + 1))
done

cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"

log "importing $IMAGE (busybox with $count applet links)"
tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -c . \
    | docker import --message "kiln offline busybox base image" - "$IMAGE" >/dev/null
image_id
