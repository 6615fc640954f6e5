#!/usr/bin/env bash
# Make sure the services the engine needs are installed and running; reuse whatever already runs.
# Usage: scripts/ensure-services.sh [mariadb] [rabbitmq] [influxdb] [chromium]
#        (default: mariadb rabbitmq; chromium is the browser of the dashboard's tests)
# Idempotent. Installs missing Debian packages when run as root; otherwise says what to do.
set -euo pipefail

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(mariadb rabbitmq)

say() { echo "[ensure-services] $*"; }
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
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    || { say "ERROR: could not start MariaDB"; exit 1; }
  wait_port 3306 60 MariaDB
  if [ $fresh = 1 ] && ! mysql -h127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; then
    # Debian's fresh root only logs in over the socket; allow root with an empty password on TCP,
    # as the default configuration expects (override [repository] to use another account).
    mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')"
  fi
}

ensure_rabbitmq() {
  if port_open 5672; then say "RabbitMQ already running on 127.0.0.1:5672, reusing it"; return; fi
  if [ ! -x /usr/sbin/rabbitmq-server ]; then
    say "installing RabbitMQ (Debian package rabbitmq-server)"; apt_install rabbitmq-server
  fi
  say "starting RabbitMQ"
  rabbitmq-server -detached || { say "ERROR: could not start RabbitMQ"; exit 1; }
  wait_port 5672 90 RabbitMQ
}

ensure_influxdb() {
  if port_open 8086; then say "InfluxDB already running on 127.0.0.1:8086, reusing it"; return; fi
  if [ ! -x /usr/bin/influxd ]; then
    say "installing InfluxDB 1.x (Debian package influxdb)"; apt_install influxdb
  fi
  say "starting InfluxDB"
  mkdir -p /var/lib/influxdb /var/log/influxdb
  chown -R influxdb:influxdb /var/lib/influxdb /var/log/influxdb 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --chuid influxdb --make-pidfile \
    --pidfile /run/influxd-htmengine.pid --exec /usr/bin/influxd -- -config /etc/influxdb/influxdb.conf \
    || { say "ERROR: could not start InfluxDB"; exit 1; }
  wait_port 8086 60 InfluxDB
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
