"""Throughput of the model swapper alone: input queues -> scheduler -> results queue.

    python bench/model_swapper.py [--models 1 6 50] [--rows 2000] [--batch 100] [--slots 2]
                                  [--trivial-model]

For each model count, in a throw-away environment (bench/engine.py's BenchEnvironment), the
scheduler service is started with ``--slots`` slots, every model is defined, ``--rows`` rows
per model are submitted in batches of ``--batch`` (model-interleaved), and the results queue
is drained until every row has its result. Printed: rows/s from the first submit to the last
result, result latency p50/p99 (submit of a batch -> its result message), and, for the real
model, the in-process rate of the same rows for comparison. ``--trivial-model`` runs a hash
"model" instead (tests/htmengine/model_swapper/swapper_hash_model.py) to show the swapper's
own per-batch and per-row overhead. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HASH_MODEL_DIR = REPO / "tests" / "htmengine" / "model_swapper"
for path in (REPO, Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from engine import BenchEnvironment  # noqa: E402

T0 = datetime(2015, 4, 26)


def _rows(count: int, phase: float):
    from htmengine.model_swapper.messages import ModelInputRow
    return [ModelInputRow(i, (T0 + timedelta(minutes=5 * i),
                              round(50 + 40 * math.sin(i / 6.0 + phase), 3)))
            for i in range(count)]


def _args(trivial: bool, seed: int) -> dict:
    if trivial:
        return {"modelConfig": {"seed": seed}, "inferenceArgs": {},
                "inputRecordSchema": [["c0", "datetime", "T"], ["c1", "float", ""]]}
    from htmengine.algorithms.model_params import getScalarMetricWithTimeOfDayAnomalyParams
    return getScalarMetricWithTimeOfDayAnomalyParams(metricData=None, minVal=0, maxVal=100)


def runOnce(numModels: int, rowsPerModel: int, batch: int, slots: int, trivial: bool) -> None:
    from htmengine.model_swapper.messages import ModelInferenceResult, unpackResultMessage
    from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface

    with BenchEnvironment() as env:
        childEnv = {**os.environ, "HTMENGINE_LOG_LEVEL": "WARNING"}
        if trivial:
            childEnv["HTMENGINE_MODEL_FACTORY"] = "swapper_hash_model:HashModel"
            childEnv["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HASH_MODEL_DIR)])
        log = open(env.tmp / "scheduler.log", "w")  # noqa: SIM115
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "htmengine.model_swapper.model_scheduler_service",
             "--num-slots", str(slots)], cwd=REPO, env=childEnv, stdout=log,
            stderr=subprocess.STDOUT)
        try:
            with ModelSwapperInterface() as swapper, ModelSwapperInterface() as reader:
                models = [uuid.uuid4().hex for _ in range(numModels)]
                for i, modelID in enumerate(models):
                    swapper.defineModel(modelID, _args(trivial, i), f"def-{i}")
                # warm-up: one row per model, so slot start-up and compilation are not timed
                _drain(reader, {m: 1 for m in models}, {}, unpackResultMessage,
                       ModelInferenceResult, lambda: [swapper.submitRequests(m, _rows(1, 0))
                                                      for m in models])
                rows = {m: _rows(rowsPerModel + 1, i)[1:] for i, m in enumerate(models)}
                sentAt: dict[tuple[str, int], float] = {}

                def submitAll() -> None:
                    for start in range(0, rowsPerModel, batch):
                        for modelID in models:
                            chunk = rows[modelID][start:start + batch]
                            sentAt[(modelID, chunk[-1].rowID)] = time.monotonic()
                            swapper.submitRequests(modelID, chunk)

                started = time.monotonic()
                latencies = _drain(reader, {m: rowsPerModel for m in models}, sentAt,
                                   unpackResultMessage, ModelInferenceResult, submitAll)
                elapsed = time.monotonic() - started
        finally:
            scheduler.terminate()
            scheduler.wait(120)
            log.close()
    total = numModels * rowsPerModel
    latencies.sort()
    print(f"models={numModels} slots={slots} rows/model={rowsPerModel} batch={batch} "
          f"model={'trivial' if trivial else 'HtmAnomalyModel'}: {total / elapsed:8.1f} rows/s "
          f"({total / batch / elapsed:7.1f} batches/s); result latency p50 "
          f"{statistics.median(latencies):.3f}s p99 "
          f"{latencies[int(0.99 * (len(latencies) - 1))]:.3f}s", flush=True)
    if not trivial:
        from htmengine.algorithms.model import HtmAnomalyModel
        model = HtmAnomalyModel.create(_args(False, 0)["modelConfig"])
        sample = _rows(min(rowsPerModel, 1000), 0)
        t = time.monotonic()
        for row in sample:
            model.run(*row.data)
        print(f"  in-process HtmAnomalyModel.run: {len(sample) / (time.monotonic() - t):8.1f} "
              f"rows/s", flush=True)


def _drain(reader, expectedRows: dict[str, int], sentAt: dict, unpack, resultType,
           submit) -> list[float]:
    """Submit, then consume results until each model has its expected row results."""
    bus, queue = reader.bus, reader.resultsQueueName
    bus.declare_queue(queue)
    submit()
    seen = dict.fromkeys(expectedRows, 0)
    latencies = []
    deadline = time.monotonic() + 3600
    while any(seen[m] < expectedRows[m] for m in expectedRows):
        if time.monotonic() > deadline:
            raise TimeoutError("results did not arrive")
        message = bus.get(queue)
        if message is None:
            time.sleep(0.01)
            continue
        result = unpack(message.body)
        rows = [r for r in result.objects if isinstance(r, resultType)]
        if result.modelID in seen:
            seen[result.modelID] += len(rows)
            if rows and (result.modelID, rows[-1].rowID) in sentAt:
                latencies.append(time.monotonic() - sentAt[(result.modelID, rows[-1].rowID)])
        bus.ack(message.delivery_tag)
    return latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[1, 6])
    parser.add_argument("--rows", type=int, default=2000, help="rows per model")
    parser.add_argument("--batch", type=int, default=100, help="rows per request batch")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--trivial-model", action="store_true")
    args = parser.parse_args(argv)
    # a SIGTERM (e.g. from `timeout`) still stops the scheduler and removes the environment
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    for numModels in args.models:
        runOnce(numModels, args.rows, args.batch, args.slots, args.trivial_model)


if __name__ == "__main__":
    main()
