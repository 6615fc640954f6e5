"""The precompile step that `make run` / `make test` use to warm numba's cache."""

import subprocess
import sys

from htmengine.algorithms.precompile import precompile


def test_precompile_runs_model_save_load_and_likelihood():
    assert precompile(records=6) > 0.0


def test_precompile_command_reports_its_time():
    done = subprocess.run([sys.executable, "-m", "htmengine.algorithms.precompile"],
                          capture_output=True, text=True, timeout=900, check=True)
    assert "compiled and cached in" in done.stdout
