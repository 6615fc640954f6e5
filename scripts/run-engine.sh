#!/usr/bin/env bash
# Start, stop or show the htmengine services under supervisord (conf/supervisord.conf, which
# includes conf/supervisord-base.conf). Called by `make run` / `make stop` after the venv,
# MariaDB, RabbitMQ and the migrations are in place.
#   scripts/run-engine.sh start    start the engine; if it already runs, leave it running
#   scripts/run-engine.sh stop     stop the engine (and supervisord)
#   scripts/run-engine.sh status   show the services' state
# Socket, pid file and supervisord's log are in $HTMENGINE_RUN_DIR (default: logs/ at the
# repository root), the services' logs in logs/ at the repository root. The services read
# $APPLICATION_CONFIG_PATH (default: the repository's conf/) and inherit any
# _NTA_UTILS_CONFIG__<FILE>__<SECTION>__<OPTION> override.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
CONF="$ROOT/conf/supervisord.conf"
LOGS="$ROOT/logs"
export HTMENGINE_RUN_DIR="${HTMENGINE_RUN_DIR:-$LOGS}"
PIDFILE="$HTMENGINE_RUN_DIR/supervisord.pid"
PROGRAMS=(model_scheduler metric_listener metric_storer anomaly_service)
export APPLICATION_CONFIG_PATH="${APPLICATION_CONFIG_PATH:-$ROOT/conf}"

say() { echo "[run-engine] $*"; }
ctl() { "$VENV/bin/supervisorctl" -c "$CONF" "$@"; }

supervisord_pid() {
  # pid of our supervisord if it is alive, else nothing
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

where_to_look() {
  say "logs: $LOGS/<service>.log (services: ${PROGRAMS[*]}); supervisord: $HTMENGINE_RUN_DIR/supervisord.log"
  say "status: scripts/run-engine.sh status; stop: make stop"
}

wait_until_started() {
  # Wait until every program is RUNNING; fail if one is FATAL/BACKOFF/EXITED for good.
  local status
  for _ in $(seq 1 40); do
    status="$(ctl status 2>/dev/null || true)"
    if [ "$(grep -c ' RUNNING ' <<<"$status")" -ge ${#PROGRAMS[@]} ]; then
      echo "$status"; return 0
    fi
    if grep -q ' FATAL ' <<<"$status"; then break; fi
    sleep 0.5
  done
  echo "$status"
  local failed
  failed="$(awk '$2 != "RUNNING" {print $1}' <<<"$status" | sed 's/^htmengine://')"
  for program in $failed; do
    say "ERROR: $program did not start; last lines of $LOGS/$program.log:"
    tail -n 15 "$LOGS/$program.log" 2>/dev/null || true
  done
  return 1
}

start() {
  [ -x "$VENV/bin/supervisord" ] || { say "ERROR: $VENV/bin/supervisord missing; run 'make run' (it sets up the venv)"; exit 1; }
  mkdir -p "$LOGS" "$HTMENGINE_RUN_DIR"
  local pid
  pid="$(supervisord_pid)"
  if [ -n "$pid" ]; then
    say "htmengine is already running (supervisord pid $pid); leaving it running"
    ctl start htmengine:* >/dev/null 2>&1 || true
    ctl status || true
    where_to_look
    return 0
  fi
  rm -f "$HTMENGINE_RUN_DIR/supervisor.sock"
  say "starting htmengine (APPLICATION_CONFIG_PATH=$APPLICATION_CONFIG_PATH)"
  "$VENV/bin/supervisord" -c "$CONF"
  if wait_until_started; then
    say "htmengine is running: send graphite plaintext samples to the metric listener port (application.conf [metric_listener] plaintext_port)"
    where_to_look
  else
    say "ERROR: htmengine did not start completely; 'make stop' stops what did"
    where_to_look
    exit 1
  fi
}

stop() {
  local pid
  pid="$(supervisord_pid)"
  if [ -z "$pid" ]; then
    say "htmengine is not running"
    return 0
  fi
  say "stopping htmengine (supervisord pid $pid)"
  ctl shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 180); do
    kill -0 "$pid" 2>/dev/null || { say "htmengine stopped"; return 0; }
    sleep 0.5
  done
  say "ERROR: supervisord (pid $pid) is still running after 90 s"
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if [ -n "$(supervisord_pid)" ]; then ctl status || true; else say "htmengine is not running"; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
