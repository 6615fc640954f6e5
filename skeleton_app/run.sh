#!/usr/bin/env bash
# Run the skeleton HTM Engine application: the engine's four services plus the web app, under
# supervisord (skeleton_app/conf/supervisord.conf), with the skeleton's configuration
# (APPLICATION_CONFIG_PATH=skeleton_app/conf: app name "skeleton", database "skeleton").
#   skeleton_app/run.sh start    set up what is missing (venv, MariaDB, RabbitMQ, database
#                                migrations), then start everything; if it runs, leave it running
#   skeleton_app/run.sh stop     stop everything (and supervisord)
#   skeleton_app/run.sh status   show the programs' state
# Environment: SKELETON_RUN_DIR (pid file and every log; default skeleton_app/logs),
# SKELETON_WEBAPP_HOST / SKELETON_WEBAPP_PORT (default 127.0.0.1:8080), SKELETON_SUPERVISOR_PORT
# (supervisor status page on 127.0.0.1, default 9001) with optional SKELETON_SUPERVISOR_USER /
# SKELETON_SUPERVISOR_PASSWORD, SKELETON_SKIP_SETUP=1
# (skip the venv/services/migration steps), and any _NTA_UTILS_CONFIG__<FILE>__<SECTION>__<OPTION>
# override, which every program inherits.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="$ROOT/.venv"
export SKELETON_RUN_DIR="${SKELETON_RUN_DIR:-$HERE/logs}"
export HTMENGINE_RUN_DIR="$SKELETON_RUN_DIR"
export APPLICATION_CONFIG_PATH="$HERE/conf"
# supervisord's status page and supervisorctl endpoint (127.0.0.1 only), optional credentials
export SKELETON_SUPERVISOR_PORT="${SKELETON_SUPERVISOR_PORT:-9001}"
export SKELETON_SUPERVISOR_USER="${SKELETON_SUPERVISOR_USER:-}"
export SKELETON_SUPERVISOR_PASSWORD="${SKELETON_SUPERVISOR_PASSWORD:-}"
export SUPERVISE_SERVERURL="http://127.0.0.1:$SKELETON_SUPERVISOR_PORT"
export SUPERVISE_USER="$SKELETON_SUPERVISOR_USER" SUPERVISE_PASSWORD="$SKELETON_SUPERVISOR_PASSWORD"
export SUPERVISE_NAME=skeleton
export SUPERVISE_CONF="$HERE/conf/supervisord.conf"
export SUPERVISE_PROGRAMS="model_scheduler metric_listener metric_storer anomaly_service api alert_service webapp"
export SUPERVISE_HINT="running: web app on http://${SKELETON_WEBAPP_HOST:-127.0.0.1}:${SKELETON_WEBAPP_PORT:-8080}/<metric>; graphite plaintext on the metric listener port (skeleton_app/conf/application.conf); JSON API and dashboard on http://127.0.0.1:8081/; supervisor status page on $SUPERVISE_SERVERURL/"

setup() {
  if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.installed" ]; then
    echo "[skeleton] setting up the Python environment (make venv)"
    make -C "$ROOT" -s venv
  fi
  "$ROOT/scripts/ensure-services.sh" mariadb rabbitmq
  echo "[skeleton] applying database migrations (python repository/migrate.py)"
  (cd "$ROOT" && "$VENV/bin/python" repository/migrate.py)
}

case "${1:-}" in
  -h|--help) echo "usage: $0 start|stop|status"; sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
if [ "${1:-}" = start ] && [ "${SKELETON_SKIP_SETUP:-0}" != 1 ]; then setup; fi
export SUPERVISE_SELF="$0"
exec "$ROOT/scripts/supervise.sh" "$@"
