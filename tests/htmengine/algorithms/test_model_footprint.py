"""bench/model_footprint.py runs end to end on a real NAB file and prints its figures."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
NAB_FILE = REPO.parent / "shared" / "nab" / "data" / "artificialWithAnomaly" / \
    "art_daily_jumpsup.csv"


def test_footprint_benchmark_prints_its_last_line():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "model_footprint.py"), "--models", "2",
         "--records", "40", "--file", str(NAB_FILE)],
        capture_output=True, text=True, timeout=600, check=True, cwd=REPO)
    lines = done.stdout.strip().splitlines()
    assert sum(line.startswith("model ") for line in lines) == 2
    assert "state_nbytes" in lines[1] and "checkpoint" in lines[1]
    assert re.fullmatch(r"rss_mb=-?[\d.]+ ckpt_kb=\d+ save_ms=[\d.]+ load_ms=[\d.]+ "
                        r"ms_per_record=[\d.]+", lines[-1]), lines[-1]


def test_footprint_help_does_not_run():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "model_footprint.py"), "--help"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert "--models" in done.stdout and "rss_mb" in done.stdout
