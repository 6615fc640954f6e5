#!/usr/bin/env bash
# Make sure the services the engine needs are installed and running; reuse whatever already runs.
# Usage: scripts/ensure-services.sh [mariadb] [rabbitmq] [influxdb] [chromium]
#        (default: mariadb rabbitmq; chromium is the browser of the dashboard's tests)
# Idempotent. Installs missing Debian packages when run as root; otherwise says what to do.
# Servers it starts listen on 127.0.0.1 only. With ENSURE_SERVICES_STARTED=FILE it appends to
# FILE each server it started (not the ones already running); scripts/stop-services.sh FILE
# stops exactly those. InfluxDB: INFLUX_PORT (8086), INFLUXDB_RPC_PORT (8088), INFLUXDB_DIR
# (/var/lib/influxdb).
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(mariadb rabbitmq)

say() { echo "[ensure-services] $*"; }
started() {  # name how-to-stop: remember a server this run started
  [ -z "${ENSURE_SERVICES_STARTED:-}" ] || echo "$1 $2" >>"$ENSURE_SERVICES_STARTED"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # port seconds name
  for _ in $(seq 1 "$2"); do port_open "$1" && return 0; sleep 1; done
  say "ERROR: $3 did not come up on 127.0.0.1:$1 within $2 s"; return 1
}
APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    say "ERROR: $* is not installed and I am not root: run 'sudo apt-get install -y $*' and try again"
    exit 1
  fi
  if [ $APT_UPDATED = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_mariadb() {
  if port_open 3306; then say "MariaDB already running on 127.0.0.1:3306, reusing it"; return; fi
  local fresh=0
  if [ ! -x /usr/sbin/mariadbd ]; then
    say "installing MariaDB (Debian package mariadb-server)"; apt_install mariadb-server mariadb-client; fresh=1
  fi
  say "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --make-pidfile --pidfile /run/mariadbd-htmengine.pid \
    --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1 \
    || { say "ERROR: could not start MariaDB"; exit 1; }
  started mariadb /run/mariadbd-htmengine.pid
  wait_port 3306 60 MariaDB
  if [ $fresh = 1 ] && ! mysql -h127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; then
    # Debian's fresh root only logs in over the socket; allow root with an empty password on TCP,
    # as the default configuration expects (override [repository] to use another account).
    mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')"
  fi
}

ensure_rabbitmq_management() {
  # The management HTTP API (port 15672) lets the queue-depth agent and getAllMessageQueues read
  # queue statistics; enabling the plugin does not restart the broker. Without it (not root,
  # rabbitmq-plugins missing) they fall back to AMQP passive declares.
  port_open 15672 && return 0
  if command -v rabbitmq-plugins >/dev/null 2>&1 && \
     rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1; then
    wait_port 15672 30 "RabbitMQ management API" || true
    say "RabbitMQ management plugin enabled (http://127.0.0.1:15672/api)"
  else
    say "WARNING: could not enable the RabbitMQ management plugin (run 'rabbitmq-plugins enable rabbitmq_management' as root); the queue-depth agent will use passive declares"
  fi
}

ensure_rabbitmq() {
  if port_open 5672; then
    say "RabbitMQ already running on 127.0.0.1:5672, reusing it"; ensure_rabbitmq_management; return
  fi
  if [ ! -x /usr/sbin/rabbitmq-server ]; then
    say "installing RabbitMQ (Debian package rabbitmq-server)"; apt_install rabbitmq-server
  fi
  say "starting RabbitMQ"
  # AMQP, epmd and the Erlang distribution port on the loopback interface only
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  rabbitmq-server -detached \
    || { say "ERROR: could not start RabbitMQ"; exit 1; }
  started rabbitmq rabbitmqctl
  wait_port 5672 90 RabbitMQ
  ensure_rabbitmq_management
}

ensure_influxdb() {
  local port="${INFLUX_PORT:-8086}" rpc="${INFLUXDB_RPC_PORT:-8088}" dir="${INFLUXDB_DIR:-/var/lib/influxdb}"
  if port_open "$port"; then say "InfluxDB already running on 127.0.0.1:$port, reusing it"; return; fi
  if [ ! -x /usr/bin/influxd ]; then
    say "installing InfluxDB 1.x (Debian package influxdb)"; apt_install influxdb
  fi
  say "starting InfluxDB on 127.0.0.1:$port (data in $dir)"
  mkdir -p "$dir" /var/log/influxdb
  chown -R influxdb:influxdb "$dir" /var/log/influxdb 2>/dev/null || true
  local pidfile="/run/influxd-htmengine-$port.pid"
  # Loopback only (HTTP API and the backup RPC port); environment overrides the Debian config.
  INFLUXDB_HTTP_BIND_ADDRESS="127.0.0.1:$port" INFLUXDB_BIND_ADDRESS="127.0.0.1:$rpc" \
  INFLUXDB_META_DIR="$dir/meta" INFLUXDB_DATA_DIR="$dir/data" INFLUXDB_DATA_WAL_DIR="$dir/wal" \
  INFLUXDB_REPORTING_DISABLED=true \
  start-stop-daemon --start --oknodo --background --chuid influxdb --make-pidfile \
    --pidfile "$pidfile" --exec /usr/bin/influxd -- -config /etc/influxdb/influxdb.conf \
    || { say "ERROR: could not start InfluxDB"; exit 1; }
  started influxdb "$pidfile"
  wait_port "$port" 60 InfluxDB
}

ensure_chromium() {
  # Debian's browser for the dashboard's browser tests (playwright drives it, downloads none).
  if [ -x /usr/bin/chromium ]; then say "chromium already installed"; return; fi
  say "installing Debian's chromium"; apt_install chromium
}

for s in "${wanted[@]}"; do
  case "$s" in
    mariadb) ensure_mariadb ;;
    rabbitmq) ensure_rabbitmq ;;
    influxdb) ensure_influxdb ;;
    chromium) ensure_chromium ;;
    *) say "ERROR: unknown service '$s' (mariadb, rabbitmq, influxdb, chromium)"; exit 2 ;;
  esac
done
