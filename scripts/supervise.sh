#!/usr/bin/env bash
# Start, stop or show a set of programs under supervisord; shared by scripts/run-engine.sh (the
# engine) and skeleton_app/run.sh (the skeleton app). The caller exports:
#   SUPERVISE_NAME      what to call it in messages ("htmengine", "the skeleton app")
#   SUPERVISE_CONF      the supervisord.conf to run
#   SUPERVISE_PROGRAMS  the programs that must reach RUNNING (space separated)
#   SUPERVISE_HINT      one line printed after a successful start (optional)
#   SUPERVISE_SELF      the command to name in "status" hints (optional)
#   HTMENGINE_RUN_DIR   socket, pid file and every log (supervisord's and each program's)
#   SUPERVISE_SERVERURL supervisorctl endpoint when not the conf's (optional; SUPERVISE_USER,
#                       SUPERVISE_PASSWORD its credentials)
# Usage: scripts/supervise.sh start|stop|status. `start` when already running leaves it running.
set -euo pipefail

case "${1:-}" in
  -h|--help)
    echo "usage: ${SUPERVISE_SELF:-$0} start|stop|status"
    echo "  start   start ${SUPERVISE_NAME:-the programs} under supervisord; if it runs, leave it running"
    echo "  stop    stop everything (and supervisord)"
    echo "  status  show the programs' state"
    exit 0 ;;
esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
: "${SUPERVISE_NAME:?}" "${SUPERVISE_CONF:?}" "${SUPERVISE_PROGRAMS:?}" "${HTMENGINE_RUN_DIR:?}"
export HTMENGINE_RUN_DIR
read -r -a PROGRAMS <<<"$SUPERVISE_PROGRAMS"
PIDFILE="$HTMENGINE_RUN_DIR/supervisord.pid"

say() { echo "[$SUPERVISE_NAME] $*"; }
ctl() {  # SUPERVISE_SERVERURL / SUPERVISE_USER / SUPERVISE_PASSWORD override the conf's endpoint
  local endpoint=()
  [ -z "${SUPERVISE_SERVERURL:-}" ] || endpoint+=(-s "$SUPERVISE_SERVERURL")
  [ -z "${SUPERVISE_USER:-}" ] || endpoint+=(-u "$SUPERVISE_USER" -p "${SUPERVISE_PASSWORD:-}")
  "$VENV/bin/supervisorctl" -c "$SUPERVISE_CONF" "${endpoint[@]}" "$@"
}

supervisord_pid() {
  # pid of our supervisord if it is alive, else nothing
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

where_to_look() {
  say "logs: $HTMENGINE_RUN_DIR/<program>.log (programs: ${PROGRAMS[*]}) and $HTMENGINE_RUN_DIR/supervisord.log"
  say "status: ${SUPERVISE_SELF:-$0} status; stop: make stop"
}

wait_until_started() {
  # Wait until every program is RUNNING; fail if one is FATAL, showing its log's tail.
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
    say "ERROR: $program did not start; last lines of $HTMENGINE_RUN_DIR/$program.log:"
    tail -n 15 "$HTMENGINE_RUN_DIR/$program.log" 2>/dev/null || true
  done
  return 1
}

start() {
  [ -x "$VENV/bin/supervisord" ] || { say "ERROR: $VENV/bin/supervisord missing; run 'make venv'"; exit 1; }
  mkdir -p "$HTMENGINE_RUN_DIR"
  local pid
  pid="$(supervisord_pid)"
  if [ -n "$pid" ]; then
    say "already running (supervisord pid $pid); leaving it running"
    # start what should run (not programs that are off by default, e.g. the queue agent)
    local names
    names="$(ctl status 2>/dev/null | awk '{print $1}' | \
      grep -E "(^|:)($(IFS='|'; echo "${PROGRAMS[*]}"))\$" || true)"
    # shellcheck disable=SC2086
    [ -z "$names" ] || ctl start $names >/dev/null 2>&1 || true
    ctl status || true
    where_to_look
    return 0
  fi
  rm -f "$HTMENGINE_RUN_DIR/supervisor.sock"
  if [ -n "${SUPERVISE_SERVERURL:-}" ]; then
    local hostport="${SUPERVISE_SERVERURL#http://}"
    if (exec 3<>"/dev/tcp/${hostport%%:*}/${hostport##*:}") 2>/dev/null; then
      say "ERROR: $hostport is already in use (another supervisord?); choose another port"
      exit 1
    fi
  fi
  # Prometheus multiprocess files of an earlier run would be counted again: start empty.
  rm -rf "$HTMENGINE_RUN_DIR/prometheus"
  mkdir -p "$HTMENGINE_RUN_DIR/prometheus"
  say "starting (APPLICATION_CONFIG_PATH=$APPLICATION_CONFIG_PATH)"
  "$VENV/bin/supervisord" -c "$SUPERVISE_CONF"
  if wait_until_started; then
    [ -z "${SUPERVISE_HINT:-}" ] || say "$SUPERVISE_HINT"
    where_to_look
  else
    say "ERROR: not everything started (is another engine using the same ports?); 'make stop' stops what did"
    where_to_look
    exit 1
  fi
}

stop() {
  local pid
  pid="$(supervisord_pid)"
  if [ -z "$pid" ]; then
    say "not running"
    return 0
  fi
  say "stopping (supervisord pid $pid)"
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
    if [ -n "$(supervisord_pid)" ]; then ctl status || true; else say "not running"; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
