"""Replay a NAB detector's published raw HTM scores through our anomaly likelihood.

    python bench/nab_replay_likelihood.py --results-root NAB/results [--detector numenta]

Reads ``<results-root>/<detector>/<category>/<detector>_<file>.csv`` (NAB's published runs of
NuPIC carry a ``raw_score`` column), recomputes the final score the way NAB's numenta detector
does (AnomalyLikelihood with the probationary split + spatial anomaly rule) using
htmengine.algorithms.anomaly_likelihood, scores the result with bench/nab_scoring.py and prints
the normalized scores. This checks the likelihood and the detector glue independently of the
HTM model. NAB's files are only read.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from bench import nab_scoring as ns
from bench.nab_detectors import SpatialAnomalyTracker, probationary_period
from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood


def replay_file(path: str) -> tuple[list, np.ndarray]:
    """(timestamps, final scores) recomputed from one results file's value/raw_score."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "raw_score" not in rows[0]:
        raise ns.NabScoringError(f"{path}: needs a raw_score column")
    period = probationary_period(len(rows))
    learning = period // 2
    likelihood = AnomalyLikelihood(learningPeriod=learning, estimationSamples=period - learning,
                                   reestimationPeriod=100)  # fmt: skip
    spatial = SpatialAnomalyTracker()
    timestamps, scores = [], np.empty(len(rows))
    for i, row in enumerate(rows):
        timestamp = ns.parse_timestamp(row["timestamp"])
        value = float(row["value"])
        flagged = spatial.check(value)
        probability = likelihood.anomalyProbability(value, float(row["raw_score"]), timestamp)
        scores[i] = 1.0 if flagged else likelihood.computeLogLikelihood(probability)
        timestamps.append(timestamp)
    return timestamps, scores


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Replay published raw scores.")
    parser.add_argument("--results-root", required=True)
    parser.add_argument("--detector", default="numenta")
    parser.add_argument("--labels", default=ns.DEFAULT_LABELS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    windows = ns.load_windows(args.labels)
    labeled, results = {}, {}
    for name in sorted(windows):
        path = ns.results_path(os.path.join(args.results_root, args.detector), args.detector,
                               name)  # fmt: skip
        timestamps, scores = replay_file(path)
        labeled[name] = ns.LabeledFile.build(name, timestamps, windows[name])
        results[name] = scores
    report = ns.score_corpus(results, labeled, sum(len(w) for w in windows.values()))
    print(ns.format_report(f"{args.detector}-replayed", report))
    print(f"elapsed {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
