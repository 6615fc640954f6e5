#!/usr/bin/env bash
# Start, stop or show the htmengine services under supervisord (conf/supervisord.conf, which
# includes conf/supervisord-base.conf). Called by `make run-engine` / `make stop` after the
# venv, MariaDB, RabbitMQ and the migrations are in place.
#   scripts/run-engine.sh start    start the engine; if it already runs, leave it running
#   scripts/run-engine.sh stop     stop the engine (and supervisord)
#   scripts/run-engine.sh status   show the services' state
# Socket, pid file and all logs are in $HTMENGINE_RUN_DIR (default: logs/ at the repository
# root). The services read $APPLICATION_CONFIG_PATH (default: the repository's conf/) and
# inherit any _NTA_UTILS_CONFIG__<FILE>__<SECTION>__<OPTION> override.
set -euo pipefail
case "${1:-}" in
  -h|--help) echo "usage: $0 start|stop|status"; sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export HTMENGINE_RUN_DIR="${HTMENGINE_RUN_DIR:-$ROOT/logs}"
export APPLICATION_CONFIG_PATH="${APPLICATION_CONFIG_PATH:-$ROOT/conf}"
export SUPERVISE_NAME=run-engine
export SUPERVISE_CONF="$ROOT/conf/supervisord.conf"
export SUPERVISE_PROGRAMS="model_scheduler metric_listener metric_storer anomaly_service api alert_service"
export SUPERVISE_HINT="htmengine is running: send graphite plaintext samples to the metric listener port (application.conf [metric_listener] plaintext_port); HTTP API on [api] port (http://127.0.0.1:8081/docs by default)"
export SUPERVISE_SELF="$0"
exec "$ROOT/scripts/supervise.sh" "$@"
