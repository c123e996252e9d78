#!/usr/bin/env bash
# Run the four services as background processes on this machine.
#
#   deploy/local/services.sh start    migrate, start registry/screening/checkpoint/reporting
#   deploy/local/services.sh stop     stop them
#   deploy/local/services.sh status   one line per service; exit 0 if all answer /readyz
#
# Logs and pid files live in .run/ (gitignored). Ports: REGISTRY_PORT (8001),
# SCREENING_PORT (8002), CHECKPOINT_PORT (8003), REPORTING_PORT (8004).
#
# A development machine: GRID_DEV_MODE defaults to 1, so the services accept the built-in
# development secrets (with a warning). Set real keys (docs/security.md) and GRID_DEV_MODE=0
# to run them as in production.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/.run"
SERVICES=(registry screening checkpoint reporting)
PY="$ROOT/.venv/bin/python"
cd "$ROOT"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

port_of() {
    case "$1" in
        registry) echo "${REGISTRY_PORT:-8001}" ;;
        screening) echo "${SCREENING_PORT:-8002}" ;;
        checkpoint) echo "${CHECKPOINT_PORT:-8003}" ;;
        reporting) echo "${REPORTING_PORT:-8004}" ;;
    esac
}

# One database cluster in development: every service gets the same DSN, its own schema.
export_env() {
    eval "$(bash "$ROOT/deploy/local/infra.sh" env)"
    export GRID_DEV_MODE="${GRID_DEV_MODE:-1}"
    local s upper
    for s in "${SERVICES[@]}"; do
        upper="$(tr '[:lower:]' '[:upper:]' <<<"$s")"
        export "${upper}_DATABASE_URL=${GRID_PG_DSN}"
        export "${upper}_PORT=$(port_of "$s")"
    done
}

pid_of() { cat "$RUN_DIR/$1.pid" 2>/dev/null || true; }

running() {
    local pid
    pid="$(pid_of "$1")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

ready() { curl -fsS "http://127.0.0.1:$(port_of "$1")/readyz" >/dev/null 2>&1; }

wait_ready() {
    local s="$1" deadline=$((SECONDS + ${GRID_SERVICE_TIMEOUT:-60}))
    until ready "$s"; do
        if ! running "$s" || ((SECONDS > deadline)); then
            tail -n 30 "$RUN_DIR/$s.log" >&2 || true
            die "$s did not become ready; see $RUN_DIR/$s.log"
        fi
        sleep 0.3
    done
}

cmd_start() {
    mkdir -p "$RUN_DIR"
    export_env
    if [[ "$GRID_DEV_MODE" =~ ^(1|true|yes|on)$ ]]; then
        log "WARNING: GRID_DEV_MODE=1: the services accept the built-in development secrets; never run like this in production"
    fi
    log "migrating"
    "$PY" -m shared.migrations "${SERVICES[@]}" >&2
    local s
    for s in "${SERVICES[@]}"; do
        if running "$s"; then
            log "$s already running (pid $(pid_of "$s"))"
            continue
        fi
        # detached from this shell's stdio, so callers piping our output are not held open
        nohup "$PY" -m uvicorn --factory "services.$s.main:app" \
            --host 127.0.0.1 --port "$(port_of "$s")" --no-access-log \
            </dev/null >>"$RUN_DIR/$s.log" 2>&1 &
        echo $! >"$RUN_DIR/$s.pid"
    done
    for s in "${SERVICES[@]}"; do wait_ready "$s"; done
    log "all services ready"
}

cmd_stop() {
    local s pid
    for s in "${SERVICES[@]}"; do
        pid="$(pid_of "$s")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$pid" 2>/dev/null || true
            log "stopped $s"
        fi
        rm -f "$RUN_DIR/$s.pid"
    done
}

cmd_status() {
    local s rc=0
    for s in "${SERVICES[@]}"; do
        if ready "$s"; then
            printf '%-11s ready    http://127.0.0.1:%s  log=%s\n' "$s" "$(port_of "$s")" "$RUN_DIR/$s.log"
        else
            printf '%-11s down     http://127.0.0.1:%s  log=%s\n' "$s" "$(port_of "$s")" "$RUN_DIR/$s.log"
            rc=3
        fi
    done
    return "$rc"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) die "usage: $0 {start|stop|status}" ;;
esac
