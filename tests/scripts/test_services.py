"""scripts/ensure-services.sh and scripts/stop-services.sh with a real InfluxDB: a server it
starts listens on 127.0.0.1 only and is recorded; a server already running is reused and not
recorded; stop-services.sh stops exactly the recorded ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_support import REPO_ROOT, free_port, listening_addresses, wait_for

pytestmark = pytest.mark.skipif(not Path("/usr/bin/influxd").exists() or os.geteuid() != 0,
                                reason="needs the Debian influxdb package and root")

ENSURE = REPO_ROOT / "scripts" / "ensure-services.sh"
STOP = REPO_ROOT / "scripts" / "stop-services.sh"


@pytest.fixture()
def influx_dir() -> Iterator[Path]:
    """A data directory the influxdb user can reach (not under pytest's 0700 tmp root)."""
    path = Path(tempfile.mkdtemp(prefix="htmengine-influx-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_started_influxdb_is_loopback_only_and_stopped_by_stop_services(influx_dir: Path,
                                                                        tmp_path: Path) -> None:
    port, rpc = free_port(), free_port()
    record = tmp_path / "started"
    env = {**os.environ, "INFLUX_PORT": str(port), "INFLUXDB_RPC_PORT": str(rpc),
           "INFLUXDB_DIR": str(influx_dir), "ENSURE_SERVICES_STARTED": str(record)}
    try:
        first = subprocess.run([str(ENSURE), "influxdb"], env=env, capture_output=True,
                               text=True, timeout=120)
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"starting InfluxDB on 127.0.0.1:{port}" in first.stdout
        pidfile = f"/run/influxd-htmengine-{port}.pid"
        assert record.read_text() == f"influxdb {pidfile}\n"
        # 0100007F is 127.0.0.1; never 00000000 (all interfaces)
        assert listening_addresses(port) == {"0100007F"}
        assert listening_addresses(rpc) == {"0100007F"}

        again = subprocess.run([str(ENSURE), "influxdb"], env=env, capture_output=True,
                               text=True, timeout=60)
        assert again.returncode == 0 and "already running" in again.stdout
        assert record.read_text() == f"influxdb {pidfile}\n"  # reused, not recorded twice
        pid = int(Path(pidfile).read_text())
    finally:
        stopped = subprocess.run([str(STOP), str(record)], capture_output=True, text=True,
                                 timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert f"stopping influxdb (pid {pid})" in stopped.stdout
    wait_for(lambda: not listening_addresses(port), timeout=10, what="InfluxDB to stop")
    assert not Path(f"/proc/{pid}").exists()
    assert not record.exists()


def test_stop_services_without_record_stops_nothing(tmp_path: Path) -> None:
    result = subprocess.run([str(STOP), str(tmp_path / "none")], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0 and result.stdout == ""
