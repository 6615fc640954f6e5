"""A MariaDB server and a RabbitMQ node of one's own, on free ports and in a given directory,
that a test or bench/faults.py may stop and start again (outages) without touching the
machine's shared servers. Both run as children (own process groups) of the caller."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pika
import pika.exceptions
import sqlalchemy as sa


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def available() -> bool:
    """True when this machine has the server programs."""
    return (os.path.exists(MARIADBD) and os.path.exists(INSTALL_DB)
            and os.path.exists(RABBITMQ_SERVER))


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


class _Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.process: subprocess.Popen | None = None
        self.downSince: float | None = None

    def _command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 90.0) -> None:
        """Start the server and wait until it answers."""
        command, env = self._command()
        with open(self.root / "server.log", "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, (
                (self.root / "server.log").read_text(errors="replace")[-3000:])
            return self._ready()

        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__} did not answer within {timeout} s")
            time.sleep(0.3)
        self.downSince = None

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL after `timeout`)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        self.downSince = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class PrivateMariaDB(_Server):
    """mariadbd on `port` with its data in `root` (no grant tables: root without password)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()
        self.datadir = root / "data"
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                        "--skip-test-db", "--auth-root-authentication-method=normal"],
                       check=True, capture_output=True, timeout=180)

    def _command(self) -> tuple[list[str], dict[str, str]]:
        return ([MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
                 "--bind-address=127.0.0.1", f"--socket={self.root / 'mysqld.sock'}",
                 f"--pid-file={self.root / 'mysqld.pid'}", "--user=root",
                 "--skip-grant-tables", "--skip-name-resolve", "--innodb-buffer-pool-size=32M",
                 "--character-set-server=utf8mb4"], dict(os.environ))

    def _ready(self) -> bool:
        engine = sa.create_engine(f"mysql+pymysql://root@127.0.0.1:{self.port}/")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except sa.exc.OperationalError:
            return False
        finally:
            engine.dispose()


class PrivateRabbitMQ(_Server):
    """A RabbitMQ node of its own (name, AMQP and distribution ports, data) in `root`."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()
        self.distPort = free_port()
        self.node = f"htmtest{uuid.uuid4().hex[:8]}@localhost"
        root.mkdir(parents=True, exist_ok=True)
        (root / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq-env.conf").write_text("")

    def _command(self) -> tuple[list[str], dict[str, str]]:
        env = {**os.environ, "HOME": str(self.root),
               "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
               "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
               "RABBITMQ_DIST_PORT": str(self.distPort),
               "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
               "RABBITMQ_LOG_BASE": str(self.root / "log"),
               "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
               "ERL_EPMD_ADDRESS": "127.0.0.1"}
        return [RABBITMQ_SERVER], env

    def _ready(self) -> bool:
        if not _port_open(self.port):
            return False
        try:
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", self.port, connection_attempts=1, socket_timeout=2)).close()
            return True
        except pika.exceptions.AMQPError:
            return False
