"""Compile (or load from numba's on-disk cache) every kernel the HTM model uses, once, so that
services and tests start with warm code: ``python -m htmengine.algorithms.precompile``.

`make run` and `make test` call it after installing. It prints a line before it starts and a
progress bar over its stages (spatial pooler, checkpoint, likelihood, temporal memory) whose
elapsed time keeps ticking while numba compiles: under a minute with an empty cache, about a
second when warm.

The temporal memory's kernels (more than half of the work) compile in a second process while
this one compiles the others (the machines this runs on have two cores or more); both write
numba's disk cache, and the model run that follows loads everything from it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from htmengine.algorithms import CACHE_PREFIX, kernel_cache_dir
from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood
from htmengine.algorithms.backtracking_tm import BacktrackingTM
from htmengine.algorithms.model import HtmAnomalyModel

STAGES = ("spatial pooler", "checkpoint save/load", "anomaly likelihood", "temporal memory")


def compile_temporal_memory(steps: int = 12) -> None:
    """Compile (or load) the temporal memory's kernels: a small throw-away TM learns
    ``steps`` random inputs the way the model calls it (the kernels' types do not depend on
    the TM's size)."""
    tm = BacktrackingTM(numberOfCols=64, cellsPerColumn=4, activationThreshold=2,
                        minThreshold=1, newSynapseCount=4, maxSynapsesPerSegment=8,
                        maxSegmentsPerCell=8, seed=7)
    rng = np.random.default_rng(7)
    for _ in range(steps):
        cols = np.sort(rng.choice(64, size=6, replace=False)).astype(np.int32)
        tm.compute_columns(cols, True, True)


def precompile(records: int = 20, progress: tqdm[Any] | None = None,
               parallel: bool = True) -> float:
    """Run a throw-away model (with save/load and the likelihood) for `records` records;
    returns the seconds it took. ``progress`` (optional) advances once per stage. With
    ``parallel`` the temporal memory compiles in a second process meanwhile."""

    def stage(name: str) -> None:
        if progress is not None:
            progress.set_postfix_str(name)
            progress.update(1)

    started = time.perf_counter()
    helper = None
    if parallel:
        helper = multiprocessing.get_context("spawn").Process(
            target=compile_temporal_memory, name="precompile-tm", daemon=True)
        helper.start()
    try:
        model = HtmAnomalyModel.from_range(0.0, 100.0)
        timestamp = datetime(2000, 1, 1)
        model.sp.compute_sparse(model.encoder.encode(timestamp, 1.0), False)
        stage(STAGES[0])
        model = HtmAnomalyModel.from_bytes(model.to_bytes())
        stage(STAGES[1])
        likelihood = AnomalyLikelihood(learningPeriod=5, estimationSamples=5,
                                       reestimationPeriod=5)
        for index in range(12):
            likelihood.anomalyProbability(float(index), (index % 4) / 4.0,
                                          timestamp + timedelta(minutes=5 * index))
        stage(STAGES[2])
        if helper is not None:
            helper.join()
            if helper.exitcode != 0:  # compile here instead (the error, if any, shows)
                compile_temporal_memory()
        for index in range(records):  # the whole model, loaded from the cache
            value = float((index * 7) % 100)
            model.run(timestamp, value)
            timestamp += timedelta(minutes=5)
            if index == records // 2:
                model = HtmAnomalyModel.from_bytes(model.to_bytes())
        stage(STAGES[3])
    finally:
        if helper is not None and helper.is_alive():
            helper.terminate()
            helper.join()
    return time.perf_counter() - started


def remove_stale_caches() -> list[Path]:
    """Remove the kernel caches of other source versions (``numba-<digest>`` directories
    beside the current one, and the files of the cache's old place in ``__pycache__``);
    returns what was removed. Does nothing when ``NUMBA_CACHE_DIR`` is set."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return []
    current = kernel_cache_dir()
    removed: list[Path] = []
    for path in sorted(current.parent.glob("*")):
        if path.is_dir() and path.name.startswith(CACHE_PREFIX) and path != current:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        elif path.is_file() and path.suffix in (".nbi", ".nbc"):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def main(argv: list[str] | None = None) -> None:
    """Command line: compile with a progress bar, then print the time it took."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    remove_stale_caches()
    print("Compiling the HTM model's numba kernels (15-30 s with an empty cache on an idle "
          "machine, about a second when cached)...", flush=True)
    with tqdm(total=len(STAGES), unit="stage", file=sys.stderr,
              bar_format="{l_bar}{bar}| {n}/{total} [{elapsed}] {postfix}") as bar:
        stop = threading.Event()

        def tick() -> None:  # keep the elapsed time moving while numba compiles
            while not stop.wait(1.0):
                bar.refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        if sys.stderr.isatty():  # a log file gets one line per stage instead
            ticker.start()
        try:
            seconds = precompile(progress=bar)
        finally:
            stop.set()
            if ticker.is_alive():
                ticker.join()
    print(f"HTM model code compiled and cached in {seconds:.1f} s")


if __name__ == "__main__":
    main()
