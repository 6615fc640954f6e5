"""Compile (or load from numba's on-disk cache) every kernel the HTM model uses, once, so that
services and tests start with warm code: ``python -m htmengine.algorithms.precompile``.

`make run` and `make test` call it after installing. It prints a line before it starts and a
progress bar over its stages (spatial pooler, temporal memory, checkpoint, likelihood) whose
elapsed time keeps ticking while numba compiles: a few minutes with an empty cache, about a
second when warm.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import datetime, timedelta

from tqdm import tqdm

from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood
from htmengine.algorithms.model import HtmAnomalyModel

STAGES = ("spatial pooler", "temporal memory", "checkpoint save/load", "anomaly likelihood")


def precompile(records: int = 20, progress: tqdm | None = None) -> float:
    """Run a throw-away model (with save/load and the likelihood) for `records` records;
    returns the seconds it took. ``progress`` (optional) advances once per stage."""

    def stage(name: str) -> None:
        if progress is not None:
            progress.set_postfix_str(name)
            progress.update(1)

    started = time.perf_counter()
    model = HtmAnomalyModel.from_range(0.0, 100.0)
    timestamp = datetime(2000, 1, 1)
    model.sp.compute_sparse(model.encoder.encode(timestamp, 1.0), False)
    stage(STAGES[0])
    likelihood = AnomalyLikelihood(learningPeriod=5, estimationSamples=5, reestimationPeriod=5)
    scores = []
    for index in range(records):
        value = float((index * 7) % 100)
        scores.append((value, model.run(timestamp, value), timestamp))
        timestamp += timedelta(minutes=5)
        if index == 0:
            stage(STAGES[1])
        if index == records // 2:
            model = HtmAnomalyModel.from_bytes(model.to_bytes())
            stage(STAGES[2])
    for value, score, when in scores:
        likelihood.anomalyProbability(value, score, when)
    stage(STAGES[3])
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    """Command line: compile with a progress bar, then print the time it took."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    print("Compiling the HTM model's numba kernels (a few minutes with an empty cache, "
          "about a second when cached)...", flush=True)
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
