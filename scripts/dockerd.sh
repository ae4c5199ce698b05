#!/usr/bin/env bash
# Start/stop a Docker engine for Kiln's tests.
#   start   reuse a daemon that already answers on /var/run/docker.sock, else start
#           `dockerd --bridge=none --iptables=false --ip-masq=false` in the background
#           (log /tmp/kiln-dockerd.log, pidfile /tmp/kiln-dockerd.pid) and wait up to 60 s.
#   stop    stop only a dockerd that this script started (found through its pidfile).
#   status  print whether a daemon answers and whether it is ours.
set -euo pipefail

PIDFILE=/tmp/kiln-dockerd.pid
LOGFILE=/tmp/kiln-dockerd.log
WAIT_SECONDS=60

log() { printf '[dockerd] %s\n' "$*"; }

answers() { docker version >/dev/null 2>&1; }

# Prints the pid from our pidfile if that process is still a dockerd.
our_pid() {
    [[ -s "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == "dockerd" ]] || return 1
    printf '%s\n' "$pid"
}

start() {
    if answers; then
        if pid="$(our_pid)"; then
            log "already running (ours, pid $pid)"
        else
            log "already running (not started by this script; reusing it)"
        fi
        return 0
    fi
    command -v dockerd >/dev/null || { log "dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
    if pid="$(our_pid)"; then
        log "our dockerd (pid $pid) exists but does not answer yet; waiting for it"
    else
        rm -f "$PIDFILE"
        log "starting dockerd (log $LOGFILE)"
        # setsid + nohup: the daemon outlives this script; no stdin.
        setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false \
            >"$LOGFILE" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PIDFILE"
    fi
    local deadline=$((SECONDS + WAIT_SECONDS))
    while ! answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd (pid $pid) exited; last log lines:" >&2
            tail -n 30 "$LOGFILE" >&2 || true
            rm -f "$PIDFILE"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "dockerd did not answer within ${WAIT_SECONDS}s; last log lines:" >&2
            tail -n 30 "$LOGFILE" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    log "ready (pid $pid, $(docker version -f '{{.Server.Version}}' 2>/dev/null))"
}

stop() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PIDFILE"
        log "no dockerd started by this script; nothing to stop"
        return 0
    fi
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "dockerd did not exit in 30s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$PIDFILE"
    log "stopped"
}

status() {
    local pid=""
    pid="$(our_pid)" || pid=""
    if answers; then
        if [[ -n "$pid" ]]; then
            log "running (ours, pid $pid)"
        else
            log "running (not ours)"
        fi
    else
        if [[ -n "$pid" ]]; then
            log "not answering (ours, pid $pid, still starting or stuck)"
        else
            log "not running"
        fi
        return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
