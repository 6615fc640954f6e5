"""NAB v1.1 scoring: windows, scaled sigmoid, threshold sweep, profiles, normalization.

Written from the description of numenta/NAB (nab/sweeper.py, scorer.py, optimizer.py,
runner.py; MIT licence). For each file the first P = min(floor(0.15 N), 750) rows are
probationary and not scored. A row is a detection when its ``anomaly_score >= threshold``.
In a window [s, e] of width w = e - s + 1 rows, a detection at row i is worth
``tpWeight * sigma(-(e - i + 1) / w) / sigma(-1)`` where sigma(y) = 2/(1 + e^(5y)) - 1
(and -1 for y > 3); only the best (earliest) detection per window counts and a window without
detection costs ``-fnWeight``. A detection outside every window is worth
``fpWeight * sigma(|e' - i| / (w' - 1))`` for the preceding window (e', w'), or ``-fpWeight``
when no window precedes it. One threshold per profile is chosen for the whole corpus by
sweeping every distinct score; the corpus score is normalized as
``100 (S - S_null) / (S_perfect - S_null)``.

Command line: ``python bench/nab_scoring.py --results DIR --detector NAME [--labels FILE]``
scores ``DIR/<category>/<NAME>_<file>.csv`` result files.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PROBATION_PERCENT = 0.15
DEFAULT_LABELS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "nab", "labels",
    "combined_windows.json",
)  # fmt: skip


class NabScoringError(ValueError):
    """Bad NAB input: a missing results file, a window edge not in the data, bad scores."""


@dataclass(frozen=True)
class CostMatrix:
    """Weights of one NAB application profile (config/profiles.json)."""

    tpWeight: float
    fnWeight: float
    fpWeight: float
    tnWeight: float = 1.0


# The three profiles of NAB's config/profiles.json.
NAB_PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tpWeight=1.0, fnWeight=1.0, fpWeight=0.11, tnWeight=1.0),
    "reward_low_FP_rate": CostMatrix(tpWeight=1.0, fnWeight=1.0, fpWeight=0.22, tnWeight=1.0),
    "reward_low_FN_rate": CostMatrix(tpWeight=1.0, fnWeight=2.0, fpWeight=0.11, tnWeight=1.0),
}


def load_profiles(path: str) -> dict[str, CostMatrix]:
    """Read a NAB profiles.json file ({name: {"CostMatrix": {...}}})."""
    with open(path) as handle:
        raw = json.load(handle)
    return {name: CostMatrix(**spec["CostMatrix"]) for name, spec in raw.items()}


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid 2*sigmoid(-5 y) - 1, and -1 for y > 3 (elementwise)."""
    y = np.asarray(position, dtype=float)
    value = 2.0 * (1.0 / (1.0 + np.exp(5.0 * y))) - 1.0
    return np.where(y > 3.0, -1.0, value)


MAX_TP = float(scaled_sigmoid(-1.0))


def probationary_length(num_rows: int, probation_percent: float = PROBATION_PERCENT) -> float:
    """Number of leading rows not scored: min(floor(0.15 N), 0.15 * 5000)."""
    return min(math.floor(probation_percent * num_rows), probation_percent * 5000)


def parse_timestamp(text: str) -> datetime.datetime:
    """Parse a NAB timestamp ("YYYY-MM-DD HH:MM:SS[.ffffff]")."""
    try:
        return datetime.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise NabScoringError(f"not a NAB timestamp: {text!r}") from exc


def load_windows(path: str) -> dict[str, list[tuple[datetime.datetime, datetime.datetime]]]:
    """Read combined_windows.json: relative data path -> [(start, end), ...]."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise NabScoringError(f"cannot read NAB labels file {path}: {exc}") from exc
    return {
        relpath: [(parse_timestamp(s), parse_timestamp(e)) for s, e in windows]
        for relpath, windows in raw.items()
    }


@dataclass
class LabeledFile:
    """One data file's rows with their window membership and unweighted sweep scores.

    `window` is the window number of each row (-1 outside windows); `tp_value` is
    sigma(-(e - i + 1)/w)/sigma(-1) for window rows, `fp_value` the unweighted false-positive
    value for other rows; `scorable` is False for probationary rows.
    """

    name: str
    window: np.ndarray
    tp_value: np.ndarray
    fp_value: np.ndarray
    scorable: np.ndarray
    num_windows: int

    @classmethod
    def build(
        cls,
        name: str,
        timestamps: Sequence[datetime.datetime],
        windows: Iterable[tuple[datetime.datetime, datetime.datetime]],
        probation_percent: float = PROBATION_PERCENT,
    ) -> LabeledFile:
        """Locate the windows in `timestamps` (first occurrence of each edge) and prepare rows."""
        n = len(timestamps)
        first_index: dict[datetime.datetime, int] = {}
        for i, ts in enumerate(timestamps):
            first_index.setdefault(ts, i)
        spans = []
        for start, end in windows:
            if start not in first_index or end not in first_index:
                raise NabScoringError(f"{name}: window edge {start} / {end} is not a data timestamp")
            spans.append((first_index[start], first_index[end]))
        spans.sort()
        window = np.full(n, -1, dtype=np.int64)
        tp_value = np.zeros(n)
        fp_value = np.full(n, -1.0)
        rows = np.arange(n)
        previous_end = None
        for number, (lo, hi) in enumerate(spans):
            if hi < lo or (previous_end is not None and lo <= previous_end):
                raise NabScoringError(f"{name}: window {number} is empty or overlaps the previous")
            width = hi - lo + 1
            inside = rows[lo : hi + 1]
            window[lo : hi + 1] = number
            tp_value[lo : hi + 1] = scaled_sigmoid(-(hi - inside + 1) / width) / MAX_TP
            stop = spans[number + 1][0] if number + 1 < len(spans) else n
            after = rows[hi + 1 : stop]
            if width > 1:
                fp_value[hi + 1 : stop] = scaled_sigmoid(np.abs(hi - after) / (width - 1.0))
            previous_end = hi
        scorable = rows >= probationary_length(n, probation_percent)
        return cls(name, window, tp_value, fp_value, scorable, len(spans))

    def __len__(self) -> int:
        return len(self.window)


@dataclass
class FileScore:
    """NAB score of one file at one threshold, with row counts (probationary rows excluded)."""

    name: str
    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    total: int


def score_file(
    labeled: LabeledFile, scores: np.ndarray, threshold: float, cost: CostMatrix
) -> FileScore:
    """Score one file's anomaly scores at `threshold` (detection iff score >= threshold)."""
    scores = _check_scores(labeled.name, scores, len(labeled))
    use = labeled.scorable
    detected = (scores >= threshold) & use
    in_window = labeled.window >= 0
    total = -cost.fnWeight * len(np.unique(labeled.window[use & in_window]))
    fp_rows = detected & ~in_window
    total += cost.fpWeight * float(np.sum(labeled.fp_value[fp_rows]))
    for number in np.unique(labeled.window[detected & in_window]):
        best = np.max(labeled.tp_value[detected & (labeled.window == number)])
        total += cost.tpWeight * best + cost.fnWeight
    return FileScore(
        name=labeled.name,
        score=float(total),
        tp=int(np.sum(detected & in_window)),
        tn=int(np.sum(use & ~in_window & ~detected)),
        fp=int(np.sum(fp_rows)),
        fn=int(np.sum(use & in_window & ~detected)),
        total=len(labeled),
    )


def _check_scores(name: str, scores: np.ndarray, n: int) -> np.ndarray:
    """Return scores as float array; they must be one finite value per row."""
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (n,):
        raise NabScoringError(f"{name}: {scores.shape[0]} scores for {n} rows")
    if not np.all(np.isfinite(scores)):
        raise NabScoringError(f"{name}: anomaly scores must be finite numbers")
    return scores


def sweep_thresholds(
    files: Sequence[tuple[LabeledFile, np.ndarray]], cost: CostMatrix
) -> tuple[np.ndarray, np.ndarray]:
    """Corpus score for every candidate threshold: (thresholds descending, scores).

    The first candidate is 1.1 (no detection); then every distinct score value. Done with one
    sort of all scorable rows: a window's contribution grows only when a row with a higher
    sweep value than the window's best so far becomes a detection.
    """
    all_scores, all_window, all_value = [], [], []
    window_offset = 0
    for labeled, scores in files:
        scores = _check_scores(labeled.name, scores, len(labeled))
        use = labeled.scorable
        in_window = labeled.window >= 0
        all_scores.append(scores[use])
        all_window.append(np.where(in_window, labeled.window + window_offset, -1)[use])
        weighted = np.where(in_window, cost.tpWeight * labeled.tp_value,
                            cost.fpWeight * labeled.fp_value)  # fmt: skip
        all_value.append(weighted[use])
        window_offset += max(labeled.num_windows, 0)
    score = np.concatenate(all_scores) if all_scores else np.zeros(0)
    window = np.concatenate(all_window) if all_window else np.zeros(0, dtype=np.int64)
    value = np.concatenate(all_value) if all_value else np.zeros(0)
    order = np.argsort(-score, kind="stable")
    score, window, value = score[order], window[order], value[order]

    delta = np.where(window < 0, value, 0.0)
    scored_windows = np.unique(window[window >= 0])
    base = -cost.fnWeight * len(scored_windows)
    # running best of each window in sweep order; its increments are the score changes
    members = np.flatnonzero(window >= 0)
    if members.size:
        by_window = members[np.argsort(window[members], kind="stable")]
        w = window[by_window]
        v = value[by_window]
        starts = np.flatnonzero(np.r_[True, w[1:] != w[:-1]])
        stops = np.r_[starts[1:], len(w)]
        running = np.empty_like(v)
        previous = np.empty_like(v)
        for lo, hi in zip(starts, stops, strict=True):
            best = np.maximum.accumulate(np.maximum(v[lo:hi], -cost.fnWeight))
            running[lo:hi] = best
            previous[lo] = -cost.fnWeight
            previous[lo + 1 : hi] = best[:-1]
        delta[by_window] = running - previous
    cumulative = base + np.cumsum(delta)
    # the score of threshold t counts every row with score >= t: take the end of each group
    group_end = np.r_[score[1:] != score[:-1], True] if score.size else np.zeros(0, dtype=bool)
    thresholds = np.r_[1.1, score[group_end]]
    totals = np.r_[base, cumulative[group_end]]
    return thresholds, totals


def optimize_threshold(
    files: Sequence[tuple[LabeledFile, np.ndarray]], cost: CostMatrix
) -> tuple[float, float]:
    """Best (threshold, corpus score); ties go to the highest threshold like NAB's optimizer."""
    thresholds, totals = sweep_thresholds(files, cost)
    best = int(np.argmax(totals))
    return float(thresholds[best]), float(totals[best])


@dataclass
class ProfileResult:
    """Result of one profile: the chosen threshold, raw and normalized scores, per-file rows."""

    profile: str
    threshold: float
    score: float
    normalized: float
    null_score: float
    perfect_score: float
    files: list[FileScore] = field(default_factory=list)


def score_corpus(
    results: Mapping[str, np.ndarray],
    labeled_files: Mapping[str, LabeledFile],
    total_windows: int,
    profiles: Mapping[str, CostMatrix] = NAB_PROFILES,
) -> dict[str, ProfileResult]:
    """Optimize, score and normalize a detector's corpus results for every profile.

    `results` maps each relative data path to its anomaly scores; `total_windows` is the
    number of labelled windows (perfect score = total_windows * tpWeight).
    """
    missing = sorted(set(labeled_files) - set(results))
    if missing:
        raise NabScoringError(f"no results for {len(missing)} files, e.g. {missing[:3]}")
    names = sorted(labeled_files)
    files = [(labeled_files[name], results[name]) for name in names]
    null_files = [(labeled_files[name], np.full(len(labeled_files[name]), 0.5)) for name in names]
    output = {}
    for profile, cost in profiles.items():
        threshold, _ = optimize_threshold(files, cost)
        per_file = [score_file(labeled, scores, threshold, cost) for labeled, scores in files]
        score = float(sum(f.score for f in per_file))
        _, null_score = optimize_threshold(null_files, cost)
        perfect = total_windows * cost.tpWeight
        span = perfect - null_score  # 0 when no scored file has a window
        normalized = 100.0 * (score - null_score) / span if span else float("nan")
        output[profile] = ProfileResult(profile, threshold, score, normalized, null_score,
                                        perfect, per_file)  # fmt: skip
    return output


def read_results_file(path: str) -> tuple[list[datetime.datetime], np.ndarray]:
    """Read a NAB results CSV: (timestamps, anomaly_score column)."""
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            if "timestamp" not in header or "anomaly_score" not in header:
                raise NabScoringError(f"{path}: needs timestamp and anomaly_score columns")
            t_col, s_col = header.index("timestamp"), header.index("anomaly_score")
            timestamps, scores = [], []
            for row in reader:
                timestamps.append(parse_timestamp(row[t_col]))
                scores.append(float(row[s_col]))
    except OSError as exc:
        raise NabScoringError(f"cannot read results file {path}: {exc}") from exc
    return timestamps, np.asarray(scores, dtype=float)


def results_path(results_dir: str, detector: str, relpath: str) -> str:
    """<results_dir>/<category>/<detector>_<file> for a relative data path."""
    category, filename = os.path.split(relpath)
    return os.path.join(results_dir, category, f"{detector}_{filename}")


def score_results_dir(
    results_dir: str,
    detector: str,
    labels_path: str = DEFAULT_LABELS,
    profiles: Mapping[str, CostMatrix] = NAB_PROFILES,
    only: Iterable[str] | None = None,
) -> dict[str, ProfileResult]:
    """Score every results file of `detector` under `results_dir` against the labels.

    With `only`, just those relative data paths are scored (and the perfect score counts
    only their windows).
    """
    windows = load_windows(labels_path)
    names = sorted(windows) if only is None else sorted(only)
    labeled, results = {}, {}
    for name in names:
        if name not in windows:
            raise NabScoringError(f"{name} is not in the labels file {labels_path}")
        timestamps, scores = read_results_file(results_path(results_dir, detector, name))
        labeled[name] = LabeledFile.build(name, timestamps, windows[name])
        results[name] = scores
    total_windows = sum(len(windows[name]) for name in names)
    return score_corpus(results, labeled, total_windows, profiles)


def format_report(detector: str, report: Mapping[str, ProfileResult]) -> str:
    """Human-readable lines: profile, threshold, raw and normalized score."""
    lines = []
    for profile, result in report.items():
        lines.append(
            f"{detector:>18} {profile:<20} threshold={result.threshold:.6f} "
            f"raw={result.score:9.4f} normalized={result.normalized:7.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="results root (contains categories)")
    parser.add_argument("--detector", required=True, help="detector name (file prefix)")
    parser.add_argument("--labels", default=DEFAULT_LABELS, help="combined_windows.json")
    parser.add_argument("--profiles", default=None, help="optional NAB profiles.json")
    args = parser.parse_args(argv)
    profiles = load_profiles(args.profiles) if args.profiles else NAB_PROFILES
    try:
        report = score_results_dir(args.results, args.detector, args.labels, profiles)
    except NabScoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(args.detector, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
