"""Compare the raw HTM anomaly scores of two NAB runs file by file.

    python bench/nab_compare_raw.py --ours OUT/htmengine --ours-name htmengine \
        --theirs NAB/results/numenta --theirs-name numenta

For every labelled file prints the share of rows whose ``raw_score`` agree (|diff| < 1e-6),
the first row where they differ, and both mean raw scores: a diagnostic of how closely our
model follows NuPIC's (NAB's published numenta run). Files are only read.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from bench import nab_scoring as ns


def raw_scores(path: str) -> np.ndarray:
    """The raw_score column of a results file."""
    with open(path, newline="") as handle:
        return np.array([float(row["raw_score"]) for row in csv.DictReader(handle)])


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Compare raw scores of two NAB runs.")
    parser.add_argument("--ours", required=True, help="results dir of our detector")
    parser.add_argument("--ours-name", default="htmengine")
    parser.add_argument("--theirs", required=True, help="results dir of the reference detector")
    parser.add_argument("--theirs-name", default="numenta")
    parser.add_argument("--labels", default=ns.DEFAULT_LABELS)
    args = parser.parse_args(argv)
    total = equal = 0
    for name in sorted(ns.load_windows(args.labels)):
        ours = raw_scores(ns.results_path(args.ours, args.ours_name, name))
        theirs = raw_scores(ns.results_path(args.theirs, args.theirs_name, name))
        if ours.shape != theirs.shape:
            print(f"{name}: {len(ours)} rows vs {len(theirs)} rows")
            continue
        same = np.abs(ours - theirs) < 1e-6
        first = len(same) if same.all() else int(np.argmin(same))
        total += len(same)
        equal += int(same.sum())
        print(f"{name:58} rows {len(same):6} equal {100 * same.mean():5.1f}% "
              f"first diff {first:6} mean raw {ours.mean():.4f} vs {theirs.mean():.4f}")  # fmt: skip
    print(f"all files: {100 * equal / max(total, 1):.1f}% of {total} rows equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
