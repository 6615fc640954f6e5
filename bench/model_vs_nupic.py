"""Compare HtmAnomalyModel raw scores with NuPIC's, record by record, on a NAB file.

Usage: python bench/model_vs_nupic.py --data DATA.csv --results numenta_RESULTS.csv [--records N]

``--results`` is a file of NAB's ``results/numenta/`` (it has a ``raw_score`` column written by
NuPIC 0.5.6 / nupic.core 0.4.10). The model is built as NAB's numenta detector builds it (file
min/max padded by 20% of the range). Prints the first differing record and the share of equal
scores; the last line is ``equal_fraction=X``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.model_speed import read_nab_csv  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--records", type=int, default=10**9)
    args = parser.parse_args(argv)

    from htmengine.algorithms.model import HtmAnomalyModel

    rows = read_nab_csv(args.data, 10**9)
    with open(args.results, newline="") as handle:
        reference = [float(r["raw_score"]) for r in csv.DictReader(handle)]
    values = [v for _, v in rows]
    low, high = min(values), max(values)
    padding = abs(high - low) * 0.2
    model = HtmAnomalyModel.from_range(low - padding, high + padding, 0.001)
    count = min(args.records, len(rows), len(reference))
    ours = [model.run(ts, value) for ts, value in rows[:count]]
    equal = [abs(a - b) < 1e-6 for a, b in zip(ours, reference, strict=False)]
    first = next((i for i, same in enumerate(equal) if not same), None)
    print(f"records {count}; first difference at record {first}; "
          f"equal {sum(equal)}/{count}; mean raw ours {statistics.fmean(ours):.4f} "
          f"NuPIC {statistics.fmean(reference[:count]):.4f}")
    print(f"equal_fraction={sum(equal) / count:.4f}")


if __name__ == "__main__":
    main()
