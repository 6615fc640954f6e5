"""Cost of switching models in one process: N models run round robin vs one model alone.

Usage: python bench/model_switch.py [--models N] [--records R] [--steps S] [--file F]

Builds N models on the first R records of a NAB file (model i starts at offset i * step, as
``model_footprint.py``; range = the whole file's min/max padded by 20%), then, for several
rounds, runs S records round robin over the N models (every record switches model: the
previous model packs its state, the next one rebuilds its working arrays) and S records on one
model alone, interleaved. ``switch_ms`` is the median over rounds of (round-robin time - alone
time) / S: the CPU a model switch adds to a step. The last line is
``switch_ms=… step_ms=… rr_step_ms=…``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from model_footprint import DEFAULT_FILE, read_rows  # noqa: E402
from tqdm import tqdm  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=3, help="models (default 3)")
    parser.add_argument("--records", type=int, default=6000,
                        help="records each model learns first (default 6000)")
    parser.add_argument("--steps", type=int, default=60,
                        help="records per timed run (default 60)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="NAB data file")
    args = parser.parse_args(argv)
    if args.models < 2 or args.records < 1 or args.steps < 1 or args.rounds < 1:
        parser.error("--models must be at least 2; --records, --steps, --rounds positive")

    from htmengine.algorithms.model import HtmAnomalyModel  # numba kernels load here

    rows = read_rows(args.file)
    values = [v for _, v in rows]
    padding = (max(values) - min(values)) * 0.2
    low, high = min(values) - padding, max(values) + padding
    step = max(1, (len(rows) - args.records) // args.models)
    models = []
    with tqdm(total=args.models * args.records, unit="rec", desc="building models",
              file=sys.stderr, mininterval=2.0) as bar:
        for index in range(args.models):
            model = HtmAnomalyModel.from_range(low, high)
            for k in range(args.records):
                model.run(*rows[(index * step + k) % len(rows)])
                bar.update(1)
            models.append(model)
    cursor = [index * step + args.records for index in range(args.models)]

    def feed(model_index: int) -> None:
        models[model_index].run(*rows[cursor[model_index] % len(rows)])
        cursor[model_index] += 1

    for k in range(2 * args.models):  # warm up: every model hydrated once
        feed(k % args.models)
    round_robin, alone = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for k in range(args.steps):
            feed(k % args.models)
        round_robin.append((time.perf_counter() - start) * 1000 / args.steps)
        feed(0)
        start = time.perf_counter()
        for _ in range(args.steps):
            feed(0)
        alone.append((time.perf_counter() - start) * 1000 / args.steps)
        print(f"round robin {round_robin[-1]:.2f} ms/record, one model {alone[-1]:.2f} "
              f"ms/record")
    switch = statistics.median(r - a for r, a in zip(round_robin, alone, strict=True))
    print(f"switch_ms={switch:.2f} step_ms={statistics.median(alone):.2f} "
          f"rr_step_ms={statistics.median(round_robin):.2f}")


if __name__ == "__main__":
    main()
