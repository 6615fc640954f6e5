"""Speed of one HtmAnomalyModel (learning on) over a real NAB file.

Usage: python bench/model_speed.py [--file F] [--records N]

Prints compile/warm-up time, median ms per record (overall and over the last 5,000 records),
the split between encoder, spatial pooler and temporal memory, checkpoint size and save/load
times. The last line is ``ms_per_record=X`` (overall median).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The NAB corpus lives in ../shared/nab beside the repository.
DEFAULT_FILE = str(REPO_ROOT.parent / "shared" / "nab" / "data" / "realKnownCause" /
                   "machine_temperature_system_failure.csv")


def read_nab_csv(path: str, limit: int) -> list[tuple[datetime, float]]:
    """(timestamp, value) rows of a NAB data file."""
    rows = []
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle):
            rows.append((datetime.strptime(record["timestamp"], "%Y-%m-%d %H:%M:%S"),
                         float(record["value"])))
            if len(rows) >= limit:
                break
    return rows


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", default=DEFAULT_FILE)
    parser.add_argument("--records", type=int, default=20000)
    args = parser.parse_args(argv)

    rows = read_nab_csv(args.file, args.records)
    values = [v for _, v in rows]
    low, high = min(values), max(values)
    padding = abs(high - low) * 0.2  # as NAB's numenta detector
    print(f"file={args.file} records={len(rows)} min={low} max={high}")

    start = time.perf_counter()
    from htmengine.algorithms.anomaly import computeRawAnomalyScore
    from htmengine.algorithms.model import HtmAnomalyModel  # numba kernels load/compile here

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    model = HtmAnomalyModel.from_range(low - padding, high + padding)
    create_s = time.perf_counter() - start
    start = time.perf_counter()
    model.run(*rows[0])
    first_s = time.perf_counter() - start
    print(f"import (incl. numba cache load/compile) {import_s:.2f} s; model creation "
          f"{create_s:.2f} s; first record {first_s * 1000:.1f} ms")

    encoder, sp, tm = model.encoder, model.sp, model.tm
    enc_t, sp_t, tm_t, total_t = [], [], [], []
    scores = []
    clock = time.perf_counter
    for timestamp, value in rows[1:]:
        # Same steps as HtmAnomalyModel.run, timed per component.
        t0 = clock()
        bits = encoder.encode(timestamp, value)
        t1 = clock()
        columns = sp.compute_sparse(bits, True)
        t2 = clock()
        scores.append(computeRawAnomalyScore(columns, model._prev_predicted))
        tm.compute_columns(columns.astype(np.int32), True, True)
        model._prev_predicted = tm.predicted_columns()
        model._records_seen += 1
        t3 = clock()
        enc_t.append(t1 - t0)
        sp_t.append(t2 - t1)
        tm_t.append(t3 - t2)
        total_t.append(t3 - t0)

    def med(xs: list[float]) -> float:
        return statistics.median(xs) * 1000 if xs else float("nan")

    tail = slice(-5000, None)
    print(f"median ms/record overall {med(total_t):.3f}, last 5000 {med(total_t[tail]):.3f}; "
          f"mean overall {statistics.fmean(total_t) * 1000:.3f}")
    print(f"  encoder median {med(enc_t):.3f} ms, SP median {med(sp_t):.3f} ms "
          f"(last 5000 {med(sp_t[tail]):.3f}), TM+anomaly median {med(tm_t):.3f} ms "
          f"(last 5000 {med(tm_t[tail]):.3f})")
    print(f"  mean raw anomaly over the last 1000 records {statistics.fmean(scores[-1000:]):.3f}")

    start = time.perf_counter()
    blob = model.to_bytes()
    save_s = time.perf_counter() - start
    start = time.perf_counter()
    restored = HtmAnomalyModel.from_bytes(blob)
    load_s = time.perf_counter() - start
    print(f"checkpoint {len(blob) / 1e6:.2f} MB; save {save_s * 1000:.0f} ms; "
          f"load {load_s * 1000:.0f} ms; records_seen {restored.records_seen}")
    print(f"ms_per_record={med(total_t):.3f}")


if __name__ == "__main__":
    main()
