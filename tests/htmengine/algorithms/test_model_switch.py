"""bench/model_switch.py runs end to end on a real NAB file and prints its figures."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
NAB_DATA = REPO.parent / "shared" / "nab" / "data"
NAB_FILES = [NAB_DATA / "artificialWithAnomaly" / "art_daily_jumpsup.csv",
             NAB_DATA / "artificialNoAnomaly" / "art_daily_small_noise.csv"]


def test_switch_benchmark_prints_its_last_line(tmp_path):
    command = [sys.executable, str(REPO / "bench" / "model_switch.py"), "--records", "30",
               "--steps", "4", "--rounds", "2", "--cache", str(tmp_path / "models.pkl"),
               "--files", *map(str, NAB_FILES)]
    for _ in range(2):  # builds the models, then reuses them from the cache
        done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                              check=True, cwd=REPO)
        lines = done.stdout.strip().splitlines()
        assert sum(line.startswith("round robin ") for line in lines) == 2
        assert re.fullmatch(r"switch_ms=-?[\d.]+ step_ms=[\d.]+ rr_step_ms=[\d.]+ "
                            r"rr_step_min_ms=[\d.]+ from_bytes_ms=[\d.]+ "
                            r"from_bytes_min_ms=[\d.]+ load_step_ms=[\d.]+ "
                            r"load_step_min_ms=[\d.]+", lines[-1]), lines[-1]
    assert "building models" not in done.stderr
