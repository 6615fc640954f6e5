"""Cost of switching models in one process: N models run round robin vs one model alone, and
the cost of loading a model from its checkpoint.

Usage: python bench/model_switch.py [--records R] [--steps S] [--rounds K] [--files F ...]
                                    [--cache PATH]

Builds one model per NAB file (default: four of ``bench/fleet.py``'s seed series), each on the
first R records of its file (range = the file's min/max padded by 20%); with ``--cache`` the
models' checkpoints are kept in PATH and reused, so that two trees can be timed on the very
same models. Then, for K rounds, it runs S records round robin over the models (every record
switches model: the previous model packs its state, the next one rebuilds its working arrays)
and S records on one model alone, timing every record in process CPU time; and it loads each
model from its checkpoint (``from_bytes``) and runs its first record, K times. The last line is
``switch_ms=… step_ms=… rr_step_ms=… rr_step_min_ms=… from_bytes_ms=… from_bytes_min_ms=…
load_step_ms=… load_step_min_ms=…``: ``rr_step_ms``/``step_ms`` the median CPU ms of a record
round robin / alone, ``switch_ms`` their difference, ``load_step_ms`` from_bytes + first record
(medians, and minima).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from model_footprint import read_rows  # noqa: E402
from tqdm import tqdm  # noqa: E402

NAB_DATA = REPO_ROOT.parent / "shared" / "nab" / "data"
DEFAULT_FILES = ("realKnownCause/nyc_taxi.csv",
                 "realKnownCause/machine_temperature_system_failure.csv",
                 "realKnownCause/cpu_utilization_asg_misconfiguration.csv",
                 "realKnownCause/ambient_temperature_system_failure.csv")
Rows = list[tuple[datetime, float]]


def build(files: list[Path], records: int) -> list[bytes]:
    """Checkpoints of one model per file, trained on its first ``records`` rows."""
    from htmengine.algorithms.model import HtmAnomalyModel

    saved = []
    with tqdm(total=len(files) * records, unit="rec", desc="building models",
              file=sys.stderr, mininterval=2.0) as bar:
        for path in files:
            rows = read_rows(path)
            values = [v for _, v in rows]
            padding = (max(values) - min(values)) * 0.2
            model = HtmAnomalyModel.from_range(min(values) - padding, max(values) + padding)
            for row in rows[:records]:
                model.run(*row)
                bar.update(1)
            saved.append(model.to_bytes())
    return saved


def ms(values: list[float]) -> tuple[float, float]:
    """(median, min) of ``values``."""
    return statistics.median(values), min(values)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000,
                        help="records each model learns first (default 3000)")
    parser.add_argument("--steps", type=int, default=60,
                        help="records per timed run (default 60)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--files", type=Path, nargs="+",
                        default=[NAB_DATA / name for name in DEFAULT_FILES],
                        help="NAB data files, one model each (at least 2)")
    parser.add_argument("--cache", type=Path, help="keep / reuse the models' checkpoints here")
    args = parser.parse_args(argv)
    if len(args.files) < 2 or args.records < 1 or args.steps < 1 or args.rounds < 1:
        parser.error("at least 2 files; --records, --steps, --rounds positive")

    from htmengine.algorithms.model import HtmAnomalyModel  # numba kernels load here

    key = ([str(p) for p in args.files], args.records)
    saved = None
    if args.cache is not None and args.cache.exists():
        cached = pickle.loads(args.cache.read_bytes())
        saved = cached["models"] if cached["key"] == key else None
    if saved is None:
        saved = build(args.files, args.records)
        if args.cache is not None:
            args.cache.write_bytes(pickle.dumps({"key": key, "models": saved}))
    series: list[Rows] = [read_rows(path) for path in args.files]
    n = len(saved)

    def load_and_step(index: int) -> tuple[float, float]:
        start = time.process_time()
        model = HtmAnomalyModel.from_bytes(saved[index])
        loaded = time.process_time()
        model.run(*series[index][args.records % len(series[index])])
        return (loaded - start) * 1000, (time.process_time() - start) * 1000

    models = [HtmAnomalyModel.from_bytes(data) for data in saved]
    cursor = [args.records] * n

    def feed(index: int) -> float:
        start = time.process_time()
        models[index].run(*series[index][cursor[index] % len(series[index])])
        cursor[index] += 1
        return (time.process_time() - start) * 1000

    for k in range(2 * n):  # warm up: every model hydrated once
        feed(k % n)
    round_robin: list[float] = []
    alone: list[float] = []
    loads: list[float] = []
    load_steps: list[float] = []
    for _ in range(args.rounds):
        rr = [feed(k % n) for k in range(args.steps)]
        feed(0)
        one = [feed(0) for _ in range(args.steps)]
        for index in range(n):
            load, load_step = load_and_step(index)
            loads.append(load)
            load_steps.append(load_step)
        round_robin += rr
        alone += one
        print(f"round robin {statistics.median(rr):.2f} ms/record, one model "
              f"{statistics.median(one):.2f} ms/record, from_bytes "
              f"{statistics.median(loads[-n:]):.2f} ms, + first record "
              f"{statistics.median(load_steps[-n:]):.2f} ms")
    rr_med, rr_min = ms(round_robin)
    one_med, _ = ms(alone)
    load_med, load_min = ms(loads)
    ls_med, ls_min = ms(load_steps)
    print(f"switch_ms={rr_med - one_med:.2f} step_ms={one_med:.2f} rr_step_ms={rr_med:.2f} "
          f"rr_step_min_ms={rr_min:.2f} from_bytes_ms={load_med:.2f} "
          f"from_bytes_min_ms={load_min:.2f} load_step_ms={ls_med:.2f} "
          f"load_step_min_ms={ls_min:.2f}")


if __name__ == "__main__":
    main()
