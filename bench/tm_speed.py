"""Speed of the backtracking TM alone on a realistic stream of SDRs.

The SDRs come from a NAB series run through the engine's encoders (time of day + RDSE) and
spatial pooler (with learning, NuPIC's anomaly parameters); with ``--simple-sdr`` (or if the
spatial pooler cannot be imported) a deterministic hash of (value bucket, hour) is used.
The SDRs are cached in ``--cache`` so repeated runs only time the TM.

    .venv/bin/python bench/tm_speed.py [--file realKnownCause/machine_temperature_system_failure.csv]
        [--repeat 1] [--limit N]

Prints the numba start-up (import + first compute) time, the median / 90th percentile ms per
``compute(learn=True)`` over blocks of the stream, and the segment / synapse counts.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The NAB corpus lives in ../shared/nab beside the repository (NAB_DATA to use another copy).
NAB_DATA = Path(os.environ.get("NAB_DATA", ROOT.parent / "shared" / "nab" / "data"))


def read_series(path: Path) -> tuple[list[datetime], np.ndarray]:
    """Timestamps and values of a NAB csv."""
    stamps, values = [], []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            stamps.append(datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S"))
            values.append(float(row["value"]))
    return stamps, np.asarray(values, dtype=np.float64)


def sdrs_from_spatial_pooler(stamps, values) -> list[np.ndarray]:
    """Active columns from encoders + spatial pooler (learning on), NuPIC anomaly params."""
    from htmengine.algorithms.encoders import DateEncoder, RandomDistributedScalarEncoder
    from htmengine.algorithms.spatial_pooler import SpatialPooler

    lo, hi = float(values.min()), float(values.max())
    span = max(hi - lo, 1.0)
    lo, hi = lo - 0.2 * span, hi + 0.2 * span
    date_enc = DateEncoder(timeOfDay=(21, 9.49))
    rdse = RandomDistributedScalarEncoder(resolution=max(0.001, (hi - lo) / 130), w=21, n=400,
                                          seed=42)
    n_date = date_enc.getWidth()
    sp = SpatialPooler(inputDimensions=(n_date + 400,), columnDimensions=(2048,),
                       potentialRadius=n_date + 400, potentialPct=0.8, globalInhibition=True,
                       numActiveColumnsPerInhArea=40, stimulusThreshold=0,
                       synPermInactiveDec=0.0005, synPermActiveInc=0.003, synPermConnected=0.2,
                       boostStrength=0.0, seed=1956)
    out = []
    for stamp, value in zip(stamps, values, strict=True):
        bits = np.concatenate([date_enc.encode(stamp), rdse.encode(value) + n_date])
        out.append(np.asarray(sp.compute_sparse(bits, True), dtype=np.int32))
    return out


def sdrs_simple(stamps, values) -> list[np.ndarray]:
    """Deterministic 40-of-2048 SDRs from (value bucket, hour) - a fallback stream."""
    lo, hi = float(values.min()), float(values.max())
    step = max((hi - lo) / 130, 1e-9)
    out = []
    for stamp, value in zip(stamps, values, strict=True):
        key = f"{int((value - lo) / step)}:{stamp.hour}".encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        out.append(np.sort(np.random.default_rng(seed).choice(2048, 40, replace=False))
                   .astype(np.int32))
    return out


def load_sdrs(path: Path, cache: Path, simple: bool) -> tuple[list[np.ndarray], str]:
    """SDRs of the series (cached)."""
    kind = "simple" if simple else "sp"
    cache_file = cache / f"{path.stem}.{kind}.npz"
    if cache_file.exists():
        with np.load(cache_file) as npz:
            lens = npz["lens"]
            flat = npz["flat"]
        splits = np.cumsum(lens)[:-1]
        return list(np.split(flat, splits)), kind
    stamps, values = read_series(path)
    if not simple:
        try:
            sdrs = sdrs_from_spatial_pooler(stamps, values)
        except ImportError as exc:
            print(f"spatial pooler unavailable ({exc}); using simple SDRs")
            kind = "simple"
            sdrs = sdrs_simple(stamps, values)
    else:
        sdrs = sdrs_simple(stamps, values)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cache / f"{path.stem}.{kind}.npz", lens=np.array([len(s) for s in sdrs]),
             flat=np.concatenate(sdrs))
    return sdrs, kind


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", default="realKnownCause/machine_temperature_system_failure.csv")
    parser.add_argument("--repeat", type=int, default=1, help="play the stream this many times")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N records")
    parser.add_argument("--block", type=int, default=5000, help="report every N steps")
    parser.add_argument("--simple-sdr", action="store_true")
    parser.add_argument("--cache", default="/tmp/htmengine_bench_sdr")
    args = parser.parse_args()

    t0 = time.perf_counter()
    sdrs, kind = load_sdrs(NAB_DATA / args.file, Path(args.cache), args.simple_sdr)
    if args.limit:
        sdrs = sdrs[:args.limit]
    print(f"{len(sdrs)} SDRs ({kind}) from {args.file} in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    from htmengine.algorithms.backtracking_tm import BacktrackingTM

    tm = BacktrackingTM()
    dense = np.zeros(2048, dtype=np.float32)
    dense[sdrs[0]] = 1
    tm.compute(dense, True)
    print(f"start-up (import + first compute, numba cache): {time.perf_counter() - t0:.2f} s")

    times, cpu_times = [], []
    steps = [s for _ in range(args.repeat) for s in sdrs][1:]
    for i, cols in enumerate(steps, start=1):
        dense[:] = 0
        dense[cols] = 1
        start = time.perf_counter()
        cpu_start = time.thread_time()
        tm.compute(dense, True)
        cpu_times.append(time.thread_time() - cpu_start)
        times.append(time.perf_counter() - start)
        if i % args.block == 0 or i == len(steps):
            block = np.array(times[-args.block:]) * 1e3
            cpu = np.array(cpu_times[-args.block:]) * 1e3
            print(f"steps {max(i - args.block, 0):6d}-{i:6d}: wall median {np.median(block):.3f} "
                  f"p90 {np.percentile(block, 90):.3f} mean {block.mean():.3f} ms | cpu mean "
                  f"{cpu.mean():.3f} ms | segments {tm.numSegments()}, "
                  f"synapses {tm.numSynapses()}")
    all_ms = np.array(times) * 1e3
    all_cpu = np.array(cpu_times) * 1e3
    print(f"overall: wall median {np.median(all_ms):.3f} ms, mean {all_ms.mean():.3f} ms, "
          f"max {all_ms.max():.1f} ms; cpu mean {all_cpu.mean():.3f} ms over {len(all_ms)} steps")
    state = tm.state_dict()
    size = sum(np.asarray(v).nbytes for v in state.values())
    print(f"state_dict: {size / 1e6:.1f} MB uncompressed")


if __name__ == "__main__":
    main()
