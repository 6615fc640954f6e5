"""Footprint of HtmAnomalyModel: resident memory per model, checkpoint size, save/load time.

Usage: python bench/model_footprint.py [--models N] [--records R] [--file F]

Feeds N models the first R records of a NAB file (model i starts at offset i * step in the
file, wrapping around; value range = the whole file's min/max padded by 20%, as NAB's numenta
detector), all kept alive in this process. Resident memory is the growth of this process's RSS
(after ``gc.collect()``) divided by N, measured from after a warm-up model (so compiled code
and first allocations are not counted). Then every model is saved and loaded once.

Prints the per-model figures, then the medians; the last line is
``rss_mb=… ckpt_kb=… save_ms=… load_ms=… ms_per_record=…``. The NAB data is looked up
relative to the repository (``../shared/nab``) unless ``--file`` is given.
"""

from __future__ import annotations

import argparse
import csv
import gc
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psutil  # noqa: E402
from tqdm import tqdm  # noqa: E402

DEFAULT_FILE = (REPO_ROOT.parent / "shared" / "nab" / "data" / "realKnownCause"
                / "machine_temperature_system_failure.csv")
WARMUP_RECORDS = 300


def read_rows(path: Path) -> list[tuple[datetime, float]]:
    """(timestamp, value) rows of a NAB data file."""
    with open(path, newline="") as handle:
        return [(datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S"), float(r["value"]))
                for r in csv.DictReader(handle)]


def rss() -> int:
    """Resident bytes of this process after a full garbage collection."""
    gc.collect()
    return psutil.Process().memory_info().rss


def feed(model, rows: list[tuple[datetime, float]]) -> float:
    """Run every row through the model; returns the seconds it took."""
    start = time.perf_counter()
    for timestamp, value in rows:
        model.run(timestamp, value)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=5, help="models kept alive (default 5)")
    parser.add_argument("--records", type=int, default=10000,
                        help="records fed to each model (default 10000)")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE,
                        help="NAB data file (default: ../shared/nab/.../"
                             "machine_temperature_system_failure.csv)")
    args = parser.parse_args(argv)
    if args.models < 1 or args.records < 1:
        parser.error("--models and --records must be positive")

    from htmengine.algorithms.model import HtmAnomalyModel  # numba kernels load here

    rows = read_rows(args.file)
    values = [v for _, v in rows]
    padding = (max(values) - min(values)) * 0.2
    low, high = min(values) - padding, max(values) + padding
    step = max(1, (len(rows) - args.records) // args.models) if len(rows) > args.records else 1
    print(f"file={args.file.name} rows={len(rows)} models={args.models} "
          f"records={args.records} offset_step={step}")

    def series(index: int) -> list[tuple[datetime, float]]:
        start = index * step
        return [rows[(start + k) % len(rows)] for k in range(args.records)]

    warm = HtmAnomalyModel.from_range(low, high)
    feed(warm, rows[:WARMUP_RECORDS])
    warm = HtmAnomalyModel.from_bytes(warm.to_bytes())
    feed(warm, rows[WARMUP_RECORDS:2 * WARMUP_RECORDS])
    del warm
    base = rss()

    models, ms_per_record, rss_steps = [], [], []
    previous = base
    bar = tqdm(total=args.models * args.records, unit="rec", desc="feeding models",
               file=sys.stderr, mininterval=2.0)
    for index in range(args.models):
        model = HtmAnomalyModel.from_range(low, high)
        data = series(index)
        start = time.perf_counter()
        for timestamp, value in data:
            model.run(timestamp, value)
            bar.update(1)
        ms_per_record.append((time.perf_counter() - start) * 1000 / len(data))
        models.append(model)
        now = rss()
        rss_steps.append(now - previous)
        previous = now
    bar.close()
    grown = rss() - base

    ckpt, save_ms, load_ms, state = [], [], [], []
    for index, model in enumerate(models):
        start = time.perf_counter()
        blob = model.to_bytes()
        save_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        restored = HtmAnomalyModel.from_bytes(blob)
        load_ms.append((time.perf_counter() - start) * 1000)
        ckpt.append(len(blob))
        nbytes = getattr(model, "state_nbytes", None)
        state.append(nbytes() if nbytes is not None else None)
        assert restored.records_seen == model.records_seen
        del restored
        print(f"model {index}: {ms_per_record[index]:.3f} ms/record, rss step "
              f"{rss_steps[index] / 1e6:.2f} MB, state_nbytes "
              f"{'-' if state[-1] is None else f'{state[-1] / 1e6:.2f} MB'}, checkpoint "
              f"{len(blob) / 1024:.0f} KB, save {save_ms[-1]:.1f} ms, load {load_ms[-1]:.1f} ms")

    per_model = grown / args.models
    print(f"rss growth {grown / 1e6:.1f} MB over {args.models} models = "
          f"{per_model / 1e6:.2f} MB/model (median step {statistics.median(rss_steps) / 1e6:.2f}"
          f" MB)")
    if state[0] is not None:
        print(f"median state_nbytes {statistics.median(state) / 1e6:.2f} MB")
    print(f"rss_mb={per_model / 1e6:.2f} ckpt_kb={statistics.median(ckpt) / 1024:.0f} "
          f"save_ms={statistics.median(save_ms):.1f} load_ms={statistics.median(load_ms):.1f} "
          f"ms_per_record={statistics.median(ms_per_record):.3f}")


if __name__ == "__main__":
    main()
