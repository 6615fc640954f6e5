#!/usr/bin/env bash
# Run the skeleton HTM Engine application: the engine's four services plus the web app, under
# supervisord (skeleton_app/conf/supervisord.conf), with the skeleton's configuration
# (APPLICATION_CONFIG_PATH=skeleton_app/conf: app name "skeleton", database "skeleton").
#   skeleton_app/run.sh start    set up what is missing (venv, MariaDB, RabbitMQ, database
#                                migrations), then start everything; if it runs, leave it running
#   skeleton_app/run.sh stop     stop everything (and supervisord)
#   skeleton_app/run.sh status   show the programs' state
# Environment: SKELETON_RUN_DIR (socket, pid file, supervisord and web app logs; default
# skeleton_app/logs), SKELETON_WEBAPP_HOST / SKELETON_WEBAPP_PORT (default 127.0.0.1:8080),
# SKELETON_SKIP_SETUP=1 (skip the venv/services/migration steps), and any
# _NTA_UTILS_CONFIG__<FILE>__<SECTION>__<OPTION> override, which every program inherits.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="$ROOT/.venv"
CONF="$HERE/conf/supervisord.conf"
export SKELETON_RUN_DIR="${SKELETON_RUN_DIR:-$HERE/logs}"
export APPLICATION_CONFIG_PATH="$HERE/conf"
PIDFILE="$SKELETON_RUN_DIR/supervisord.pid"
PROGRAMS=(model_scheduler metric_listener metric_storer anomaly_service webapp)

say() { echo "[skeleton] $*"; }
ctl() { "$VENV/bin/supervisorctl" -c "$CONF" "$@"; }

supervisord_pid() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

log_of() {
  if [ "$1" = webapp ]; then echo "$SKELETON_RUN_DIR/webapp.log"; else echo "$ROOT/logs/$1.log"; fi
}

where_to_look() {
  say "logs: $ROOT/logs/<service>.log (engine), $SKELETON_RUN_DIR/webapp.log, $SKELETON_RUN_DIR/supervisord.log"
  say "status: skeleton_app/run.sh status; stop: skeleton_app/run.sh stop (or make stop)"
}

setup() {
  if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.installed" ]; then
    say "setting up the Python environment (make venv)"
    make -C "$ROOT" -s venv
  fi
  "$ROOT/scripts/ensure-services.sh" mariadb rabbitmq
  say "applying database migrations (python repository/migrate.py)"
  (cd "$ROOT" && "$VENV/bin/python" repository/migrate.py)
}

wait_until_started() {
  local status
  for _ in $(seq 1 60); do
    status="$(ctl status 2>/dev/null || true)"
    if [ "$(grep -c ' RUNNING ' <<<"$status")" -ge ${#PROGRAMS[@]} ]; then
      echo "$status"; return 0
    fi
    if grep -q ' FATAL ' <<<"$status"; then break; fi
    sleep 0.5
  done
  echo "$status"
  local program
  for program in $(awk '$2 != "RUNNING" {print $1}' <<<"$status" | sed 's/^.*://'); do
    say "ERROR: $program did not start; last lines of $(log_of "$program"):"
    tail -n 15 "$(log_of "$program")" 2>/dev/null || true
  done
  return 1
}

start() {
  [ "${SKELETON_SKIP_SETUP:-0}" = 1 ] || setup
  [ -x "$VENV/bin/supervisord" ] || { say "ERROR: $VENV/bin/supervisord missing; run 'make venv'"; exit 1; }
  mkdir -p "$SKELETON_RUN_DIR" "$ROOT/logs"
  local pid
  pid="$(supervisord_pid)"
  if [ -n "$pid" ]; then
    say "the skeleton app is already running (supervisord pid $pid); leaving it running"
    ctl start all >/dev/null 2>&1 || true
    ctl status || true
    where_to_look
    return 0
  fi
  rm -f "$SKELETON_RUN_DIR/supervisor.sock"
  say "starting the engine and the web app (APPLICATION_CONFIG_PATH=$APPLICATION_CONFIG_PATH)"
  "$VENV/bin/supervisord" -c "$CONF"
  if wait_until_started; then
    say "running: web app on http://${SKELETON_WEBAPP_HOST:-127.0.0.1}:${SKELETON_WEBAPP_PORT:-8080}/<metric>;" \
        "graphite plaintext on the metric listener port (skeleton_app/conf/application.conf)"
    where_to_look
  else
    say "ERROR: not everything started (is another engine using the same ports?);" \
        "'skeleton_app/run.sh stop' stops what did"
    where_to_look
    exit 1
  fi
}

stop() {
  local pid
  pid="$(supervisord_pid)"
  if [ -z "$pid" ]; then
    say "the skeleton app is not running"
    return 0
  fi
  say "stopping the skeleton app (supervisord pid $pid)"
  ctl shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 240); do
    kill -0 "$pid" 2>/dev/null || { say "stopped"; return 0; }
    sleep 0.5
  done
  say "ERROR: supervisord (pid $pid) is still running after 120 s"
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if [ -n "$(supervisord_pid)" ]; then ctl status || true; else say "the skeleton app is not running"; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
