#!/usr/bin/env bash
# A process manager that answers the four compose commands the host fallback
# (compose/maintenance-backup.sh) uses, for trackers run as plain processes:
# the tests and benchmarks point COMPOSE_CMD at it to drive the real script
# against a real tracker binary (the unmodified Torrust tracker) without a
# container engine. It is test support, not a product part.
#
#   ps                      one line per running service: "<project>_<svc>_1  Up"
#   stop [-t N] SVC...      STOP_SIGNAL (default TERM, as compose), then after
#                           N s (default 10, as compose) SIGKILL; waits for exit
#   start SVC...            runs $PROCESS_COMPOSE_DIR/SVC.start in the
#                           background (its own session, output appended to
#                           SVC.log); its pid goes to SVC.pid
#   run --rm SVC ARGS...    runs $PROCESS_COMPOSE_DIR/SVC.run ARGS... in the
#                           foreground and exits with its status
#   version                 prints one line
#
# SVC.start should `exec` the service so the recorded pid is the service's
# own. Environment: PROCESS_COMPOSE_DIR (required), STOP_SIGNAL (TERM).
set -euo pipefail

dir=${PROCESS_COMPOSE_DIR:?PROCESS_COMPOSE_DIR must name the folder with the SVC.start / SVC.run files}
project=proc

alive() { # svc
    local pid
    [ -f "$dir/$1.pid" ] || return 1
    pid=$(cat "$dir/$1.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        # A zombie is not running.
        ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
version) echo "process-compose (test support)" ;;
ps)
    printf 'Name State\n'
    for f in "$dir"/*.start; do
        [ -e "$f" ] || continue
        svc=$(basename "$f" .start)
        if alive "$svc"; then
            printf '%s_%s_1 Up\n' "$project" "$svc"
        else
            printf '%s_%s_1 Exit\n' "$project" "$svc"
        fi
    done
    ;;
stop)
    timeout=10
    if [ "${1:-}" = -t ]; then
        timeout=$2
        shift 2
    fi
    for svc in "$@"; do
        alive "$svc" || continue
        pid=$(cat "$dir/$svc.pid")
        kill -s "${STOP_SIGNAL:-TERM}" "$pid" 2>/dev/null || true
        for _ in $(seq $((timeout * 20))); do
            alive "$svc" || break
            sleep 0.05
        done
        if alive "$svc"; then
            kill -KILL "$pid" 2>/dev/null || true
            while alive "$svc"; do sleep 0.05; done
        fi
        echo "Stopping ${project}_${svc}_1 ... done"
    done
    ;;
start)
    for svc in "$@"; do
        [ -f "$dir/$svc.start" ] || { echo "no such service: $svc ($dir/$svc.start)" >&2; exit 1; }
        alive "$svc" && continue
        # A background job of a script starts with SIGINT and SIGQUIT
        # ignored; the service gets the default dispositions back.
        setsid env --default-signal=INT,QUIT bash "$dir/$svc.start" >>"$dir/$svc.log" 2>&1 </dev/null &
        echo $! >"$dir/$svc.pid"
        echo "Starting ${project}_${svc}_1 ... done"
    done
    ;;
run)
    [ "${1:-}" = --rm ] && shift
    svc=${1:?run needs a service}
    shift
    [ -f "$dir/$svc.run" ] || { echo "no such one-shot service: $svc ($dir/$svc.run)" >&2; exit 1; }
    exec bash "$dir/$svc.run" "$@"
    ;;
*)
    echo "usage: $(basename "$0") ps | stop [-t N] SVC... | start SVC... | run --rm SVC ARGS... | version" >&2
    exit 2
    ;;
esac
