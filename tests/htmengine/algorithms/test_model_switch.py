"""bench/model_switch.py runs end to end on a real NAB file and prints its figures."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
NAB_FILE = REPO.parent / "shared" / "nab" / "data" / "artificialWithAnomaly" / \
    "art_daily_jumpsup.csv"


def test_switch_benchmark_prints_its_last_line():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "model_switch.py"), "--models", "2",
         "--records", "30", "--steps", "4", "--rounds", "2", "--file", str(NAB_FILE)],
        capture_output=True, text=True, timeout=600, check=True, cwd=REPO)
    lines = done.stdout.strip().splitlines()
    assert sum(line.startswith("round robin ") for line in lines) == 2
    assert re.fullmatch(r"switch_ms=-?[\d.]+ step_ms=[\d.]+ rr_step_ms=[\d.]+", lines[-1]), \
        lines[-1]
