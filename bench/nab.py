"""Run a detector on the NAB corpus, write NAB results files, score them, print the figures.

    python bench/nab.py [--data DIR] [--labels FILE] [--out DIR] [--jobs N]
                        [--files PATTERN] [--detector htmengine|null|windowedGaussian]

Each worker process is long-lived and handles many files, largest first; a progress bar counts
rows. Results go to ``<out>/<category>/<detector>_<file>.csv`` (default ``<out>`` =
``$TMPDIR/htmengine-nab/<detector>``, NAB's ``results/<detector>`` layout) with the columns
``timestamp,value,anomaly_score,raw_score,label``; then bench/nab_scoring.py scores them and
the three normalized scores and the elapsed time are printed.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import fnmatch
import json
import multiprocessing
import os
import queue
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tqdm import tqdm

from bench import nab_scoring
from bench.nab_detectors import DETECTORS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "nab", "data"))
DEFAULT_LABELS = os.path.normpath(
    os.path.join(REPO, "..", "shared", "nab", "labels", "combined_windows.json")
)
DEFAULT_OUT = os.path.join(tempfile.gettempdir(), "htmengine-nab")
PROGRESS_EVERY = 500  # rows between progress messages from a worker


@dataclass(frozen=True)
class FileTask:
    """One data file to run: its relative path, absolute input and output paths, windows."""

    relpath: str
    data_path: str
    out_path: str
    windows: tuple[tuple[datetime.datetime, datetime.datetime], ...]
    size: int


def read_data_file(path: str) -> tuple[list[datetime.datetime], list[float]]:
    """Read a NAB data CSV (timestamp,value)."""
    timestamps, values = [], []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if header[:2] != ["timestamp", "value"]:
            raise nab_scoring.NabScoringError(f"{path}: expected header timestamp,value")
        for row in reader:
            timestamps.append(nab_scoring.parse_timestamp(row[0]))
            values.append(float(row[1]))
    return timestamps, values


_progress: multiprocessing.Queue | None = None


def _init_worker(progress: multiprocessing.Queue) -> None:
    """Pool initializer: keep the progress queue in the worker."""
    global _progress
    _progress = progress


def run_file(detector_name: str, task: FileTask) -> tuple[str, int, float, float]:
    """Run the detector over one file and write its results.

    Returns (relpath, rows, wall seconds, CPU seconds of this worker)."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    timestamps, values = read_data_file(task.data_path)
    detector = DETECTORS[detector_name](values)
    os.makedirs(os.path.dirname(task.out_path), exist_ok=True)
    pending = 0
    with open(task.out_path + ".part", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["timestamp", "value", "anomaly_score", "raw_score", "label"])
        for ts, value in zip(timestamps, values, strict=True):
            score, raw = detector.handle(ts, value)
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"{task.relpath}: anomaly score {score} at {ts} not in [0, 1]")
            label = int(any(start <= ts <= end for start, end in task.windows))
            writer.writerow([ts.isoformat(sep=" "), repr(value), repr(score), repr(raw), label])
            pending += 1
            if pending == PROGRESS_EVERY and _progress is not None:
                _progress.put(pending)
                pending = 0
    os.replace(task.out_path + ".part", task.out_path)
    if pending and _progress is not None:
        _progress.put(pending)
    return (task.relpath, len(values), time.perf_counter() - started,
            time.process_time() - cpu_started)  # fmt: skip


def build_tasks(
    data_dir: str, labels: str, out_dir: str, detector: str, pattern: str | None
) -> tuple[list[FileTask], dict]:
    """The files to run (largest first) and the windows of the labels file."""
    windows = nab_scoring.load_windows(labels)
    tasks = []
    for relpath, file_windows in windows.items():
        if pattern and not fnmatch.fnmatch(relpath, pattern):
            continue
        data_path = os.path.join(data_dir, relpath)
        if not os.path.isfile(data_path):
            raise nab_scoring.NabScoringError(f"data file {data_path} is missing")
        out_path = nab_scoring.results_path(out_dir, detector, relpath)
        tasks.append(FileTask(relpath, data_path, out_path, tuple(file_windows),
                              os.path.getsize(data_path)))  # fmt: skip
    if not tasks:
        raise nab_scoring.NabScoringError(f"no labelled data file matches {pattern!r}")
    tasks.sort(key=lambda t: t.size, reverse=True)
    return tasks, windows


def count_rows(path: str) -> int:
    """Data rows of a CSV file (header excluded)."""
    with open(path, "rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def run_corpus(
    tasks: Sequence[FileTask], detector: str, jobs: int
) -> list[tuple[str, int, float, float]]:
    """Run every task in `jobs` long-lived worker processes with a progress bar over rows."""
    total_rows = sum(count_rows(t.data_path) for t in tasks)
    context = multiprocessing.get_context("fork")
    progress = context.Queue()
    done: list[tuple[str, int, float, float]] = []
    with context.Pool(jobs, initializer=_init_worker, initargs=(progress,)) as pool, tqdm(
        total=total_rows, unit="rows", smoothing=0.05, mininterval=1.0, file=sys.stderr
    ) as bar:
        pending = [pool.apply_async(run_file, (detector, task)) for task in tasks]
        while pending:
            try:
                bar.update(progress.get(timeout=0.5))
            except queue.Empty:
                pass
            still = []
            for result in pending:
                if result.ready():
                    done.append(result.get())  # re-raises a worker's error
                else:
                    still.append(result)
            pending = still
        while True:
            try:
                bar.update(progress.get(timeout=0.2))
            except queue.Empty:
                break
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Run and score a detector on NAB.")
    parser.add_argument("--data", default=DEFAULT_DATA, help="NAB data directory")
    parser.add_argument("--labels", default=DEFAULT_LABELS, help="combined_windows.json")
    parser.add_argument("--out", default=None,
                        help=f"results directory (default {DEFAULT_OUT}/<detector>)")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2)),
                        help="worker processes")  # fmt: skip
    parser.add_argument("--files", default=None, help="glob on relative paths, e.g. 'realTweets/*'")
    parser.add_argument("--detector", default="htmengine", choices=sorted(DETECTORS))
    parser.add_argument("--score-only", action="store_true", help="only score existing results")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    out_dir = args.out or os.path.join(DEFAULT_OUT, args.detector)
    started = time.perf_counter()
    try:
        tasks, _ = build_tasks(args.data, args.labels, out_dir, args.detector, args.files)
    except nab_scoring.NabScoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows, cpu = 0, 0.0
    if not args.score_only:
        finished = run_corpus(tasks, args.detector, args.jobs)
        rows = sum(item[1] for item in finished)
        cpu = sum(item[3] for item in finished)
        stats_path = os.path.join(out_dir, f"{args.detector}_run_stats.json")
        with open(stats_path, "w") as handle:
            json.dump([{"file": f, "rows": n, "wall_s": round(w, 3), "cpu_s": round(c, 3)}
                       for f, n, w, c in sorted(finished)], handle, indent=1)  # fmt: skip
    detect_seconds = time.perf_counter() - started
    report = nab_scoring.score_results_dir(
        out_dir, args.detector, args.labels,
        only=[t.relpath for t in tasks],
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    print(f"detector {args.detector}: {len(tasks)} files, {rows} rows, jobs {args.jobs}")
    print(nab_scoring.format_report(args.detector, report))
    if rows:
        print(f"detection {detect_seconds:.1f} s wall ({rows / detect_seconds:.0f} rows/s), "
              f"worker CPU {cpu:.1f} s ({rows / max(cpu, 1e-9):.0f} rows/CPU-s), "
              f"total elapsed {elapsed:.1f} s")  # fmt: skip
    else:
        print(f"total elapsed {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
