#!/usr/bin/env bash
# Stop the servers that scripts/ensure-services.sh started and recorded in FILE
# (ENSURE_SERVICES_STARTED=FILE), and nothing else; then remove FILE. `make test` uses it so that
# servers started for the tests stop when the tests end, and servers already running keep running.
# Usage: scripts/stop-services.sh FILE
set -euo pipefail

case "${1:-}" in
  -h|--help) echo "usage: $0 FILE"; sed -n '2,4s/^# \{0,1\}//p' "$0"; exit 0 ;;
  "") echo "usage: $0 FILE" >&2; exit 2 ;;
esac
record="$1"
[ -f "$record" ] || exit 0
say() { echo "[stop-services] $*"; }

stop_pidfile() {  # name pidfile
  local pid
  pid="$(cat "$2" 2>/dev/null || true)"
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then rm -f "$2"; return 0; fi
  say "stopping $1 (pid $pid), started for this run"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$2"; return 0; }; sleep 0.5; done
  say "ERROR: $1 (pid $pid) still running after 30 s"; return 1
}

status=0
while read -r name how; do
  case "$how" in
    rabbitmqctl) say "stopping $name, started for this run"; rabbitmqctl -q stop || status=1 ;;
    *) stop_pidfile "$name" "$how" || status=1 ;;
  esac
done <"$record"
rm -f "$record"
exit $status
