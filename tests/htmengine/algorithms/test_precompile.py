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


def test_sources_digest_changes_with_any_source(tmp_path):
    from htmengine.algorithms import PACKAGE_DIR, sources_digest
    for name in ("_tm_outsyn.py", "_tm_store.py"):
        (tmp_path / name).write_bytes((PACKAGE_DIR / name).read_bytes())
    before = sources_digest(tmp_path)
    assert sources_digest(tmp_path) == before
    callee = tmp_path / "_tm_outsyn.py"  # a kernel others call: numba would not notice it
    callee.write_bytes(callee.read_bytes() + b"\n# changed\n")
    assert sources_digest(tmp_path) != before


def _cache_dir_in_child(env: dict[str, str]) -> str:
    code = "import numba, htmengine.algorithms; print(numba.config.CACHE_DIR)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True, env=env)
    return done.stdout.strip()


def test_kernels_are_cached_under_the_sources_digest_unless_the_user_says(tmp_path):
    import os

    from htmengine.algorithms import kernel_cache_dir, sources_digest
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    assert _cache_dir_in_child(env) == str(kernel_cache_dir())
    assert kernel_cache_dir().name == "numba-" + sources_digest()
    assert _cache_dir_in_child({**env, "NUMBA_CACHE_DIR": str(tmp_path)}) == str(tmp_path)


def test_precompile_removes_caches_of_other_sources(monkeypatch):
    from htmengine.algorithms import kernel_cache_dir
    from htmengine.algorithms.precompile import remove_stale_caches
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    current = kernel_cache_dir()
    current.mkdir(parents=True, exist_ok=True)
    old_dir = current.parent / "numba-0000000000000000"
    (old_dir / "sub").mkdir(parents=True, exist_ok=True)
    old_file = current.parent / "_tm_store.load_pool-1.py311.nbi"
    old_file.write_bytes(b"old")
    removed = remove_stale_caches()
    assert old_dir in removed and old_file in removed
    assert not old_dir.exists() and not old_file.exists()
    assert current.is_dir()
