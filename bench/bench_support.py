"""Shared pieces of the engine benchmarks: a throw-away environment (own database, RabbitMQ
virtual host, queue names, checkpoint root and graphite port; removed afterwards), starting and
stopping the four services as processes, and a collector of the results exchange."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SERVICES = ("htmengine.model_swapper.model_scheduler_service", "htmengine.runtime.anomaly_service",
            "htmengine.runtime.metric_storer", "htmengine.runtime.metric_listener")


def freePort() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def override(configFile: str, section: str, option: str) -> str:
    """The environment variable overriding `option` of `section` in `configFile`."""
    root = Path(configFile).stem.upper().replace("-", "_")
    return f"_NTA_UTILS_CONFIG__{root}__{section.upper()}__{option.upper()}"


class BenchEnvironment:
    """Own database, vhost, queue names, checkpoint root and port; applied to os.environ."""

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:8]
        self.prefix = f"bench_{token}"
        self.db = f"htmengine_bench_{token}"
        self.vhost = f"htmengine_bench_{token}"
        self.tmp = Path(tempfile.mkdtemp(prefix="htmengine-bench-"))
        self.port = freePort()
        self.env = {
            "APPLICATION_CONFIG_PATH": str(REPO / "conf"),
            override("application.conf", "repository", "db"): self.db,
            override("application.conf", "metric_streamer", "results_exchange_name"):
                f"{self.prefix}.model.results",
            override("application.conf", "metric_listener", "queue_name"):
                f"{self.prefix}.metric.custom.data",
            override("application.conf", "metric_listener", "plaintext_port"): str(self.port),
            override("model-swapper.conf", "interface_bus", "results_queue"):
                f"{self.prefix}.mswapper.results",
            override("model-swapper.conf", "interface_bus", "model_input_queue_prefix"):
                f"{self.prefix}.mswapper.model.input.",
            override("model-swapper.conf", "interface_bus", "scheduler_notification_queue"):
                f"{self.prefix}.mswapper.scheduler.notification",
            override("model-checkpoint.conf", "storage", "root"): str(self.tmp / "checkpoints"),
            override("rabbitmq.conf", "connection", "virtual_host"): self.vhost,
        }

    def __enter__(self) -> BenchEnvironment:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", self.vhost], check=True,
                       capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest",
                        ".*", ".*", ".*"], check=True, capture_output=True)
        os.environ.update(self.env)
        subprocess.run([sys.executable, str(REPO / "repository" / "migrate.py")], check=True,
                       env=dict(os.environ), cwd=REPO, capture_output=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], capture_output=True)
        import sqlalchemy as sa

        from htmengine.repository import engineFactory
        engineFactory().dispose()
        server = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/")
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{self.db}`")
        server.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)


def startServices(env: BenchEnvironment, slots: int,
                  modules: tuple[str, ...] = SERVICES) -> list[subprocess.Popen]:
    """Start `modules` as processes (logs in env.tmp/<service>.log)."""
    processes = []
    for module in modules:
        args = (["--num-slots", str(slots)]
                if slots > 0 and module.endswith("scheduler_service") else [])
        log = open(env.tmp / f"{module.rsplit('.', 1)[-1]}.log", "w")  # noqa: SIM115
        processes.append(subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                          stdout=log, stderr=subprocess.STDOUT))
    return processes


def stopServices(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every process, wait up to 120 s each, then kill."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()


class ResultCollector(threading.Thread):
    """Receives the results exchange; records when each (metric uid, rowid) was published."""

    def __init__(self, exchange: str) -> None:
        super().__init__(daemon=True)
        self.exchange = exchange
        self.received: dict[tuple[str, int], float] = {}
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:  # noqa: D102
        from htmengine.pipeline.results_serialization import deserializeModelResult
        from nta_utils.message_bus import MessageBus

        queue = f"{self.exchange}.bench"
        with MessageBus() as bus:
            bus.declare_fanout_exchange(self.exchange, durable=True)
            bus.declare_queue(queue, durable=False)
            bus.bind_queue(queue, self.exchange)
            self.ready.set()
            for message in bus.consume(queue, prefetch=500, inactivity_timeout=0.2):
                if message is not None:
                    now = time.monotonic()
                    body = deserializeModelResult(message.body)
                    uid = body.get("metric", {}).get("uid")
                    for result in body.get("results", []):
                        self.received.setdefault((uid, result["rowid"]), now)
                    bus.ack(message.delivery_tag)
                if self.stop.is_set():
                    break




def cpuSeconds(processes) -> dict[str, float]:  # noqa: ANN001
    """CPU seconds (user + system) per service, its slot processes included."""
    out = {}
    for module, p in zip(SERVICES, processes, strict=True):
        total = 0.0
        try:
            proc = psutil.Process(p.pid)
            for q in [proc, *proc.children(recursive=True)]:
                times = q.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
        out[module.rsplit(".", 1)[-1]] = total
    return out
