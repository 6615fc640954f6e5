"""Check bench/nab_scoring.py against NAB's published results.

    python bench/nab_validate_scorer.py --results-root NAB/results \
        --thresholds NAB/config/thresholds.json --final NAB/results/final_results.json \
        numenta null windowedGaussian random numentaTM

For each detector it reads ``<results-root>/<detector>/<category>/<detector>_<file>.csv``
(NAB's layout, e.g. a NAB checkout) and prints: the published normalized score, our score at
the published threshold (must be equal), and our score with our own threshold sweep (equal or
slightly better: some published thresholds came from an older optimizer). With ``--digits 12``
scores are first rounded to 12 significant digits, the precision of NAB's published CSVs
(Python 2 ``str``), to compare a detector we ran ourselves with NAB's published run.
NAB's files are only read, never copied into this repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from bench import nab_scoring as ns


def round_significant(scores: np.ndarray, digits: int) -> np.ndarray:
    """Round every score to `digits` significant digits (like '%.{digits}g')."""
    return np.array([float(f"{x:.{digits}g}") for x in scores])


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Validate the NAB scorer on published results.")
    parser.add_argument("detectors", nargs="+")
    parser.add_argument("--results-root", required=True)
    parser.add_argument("--labels", default=ns.DEFAULT_LABELS)
    parser.add_argument("--thresholds", default=None, help="NAB config/thresholds.json")
    parser.add_argument("--final", default=None, help="NAB results/final_results.json")
    parser.add_argument("--digits", type=int, default=None, help="round scores first")
    args = parser.parse_args(argv)

    windows = ns.load_windows(args.labels)
    total_windows = sum(len(w) for w in windows.values())
    published_thresholds = json.load(open(args.thresholds)) if args.thresholds else {}
    published_final = json.load(open(args.final)) if args.final else {}
    for detector in args.detectors:
        labeled, results = {}, {}
        for name in sorted(windows):
            path = ns.results_path(os.path.join(args.results_root, detector), detector, name)
            timestamps, scores = ns.read_results_file(path)
            labeled[name] = ns.LabeledFile.build(name, timestamps, windows[name])
            results[name] = round_significant(scores, args.digits) if args.digits else scores
        report = ns.score_corpus(results, labeled, total_windows)
        for profile, result in report.items():
            cost = ns.NAB_PROFILES[profile]
            line = f"{detector:>17} {profile:<19}"
            if detector in published_final:
                line += f" published {published_final[detector][profile]:7.3f} |"
            if detector in published_thresholds:
                threshold = published_thresholds[detector][profile]["threshold"]
                raw = sum(ns.score_file(labeled[n], results[n], threshold, cost).score
                          for n in labeled)  # fmt: skip
                norm = 100 * (raw - result.null_score) / (result.perfect_score - result.null_score)
                line += f" ours @ published threshold {threshold:.6f}: {norm:7.3f} |"
            line += f" ours swept: {result.normalized:7.3f} @ {result.threshold:.6f}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
