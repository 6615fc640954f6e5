"""The likelihood schedule of AnomalyLikelihoodHelper (pure logic: the database reads and the
likelihood functions are replaced by recording fakes) and the display value scale."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from htmengine.runtime import anomaly_likelihood_helper as helper_module
from htmengine.runtime.anomaly_likelihood_helper import (
    AnomalyLikelihoodHelper,
    ScoredRow,
    logScale,
    rescaleForDisplay,
)

T0 = datetime(2015, 1, 1)
SPIKE = 0.777   # raw score for which the fake likelihood reports a very unusual value


class _FakeQueries:
    """Earlier scored rows of one metric, as the helper reads them."""

    def __init__(self, scored: list[ScoredRow]) -> None:
        self.scored = scored
        self.tailReads = 0

    def getProcessedMetricDataCount(self, conn, metricId):  # noqa: N802
        return len(self.scored)

    def getMetricDataWithRawAnomalyScoresTail(self, conn, metricId, limit):  # noqa: N802
        self.tailReads += 1
        return list(reversed(self.scored))[:limit]


@pytest.fixture()
def recorder(monkeypatch):
    fits: list[tuple[int, float]] = []   # (number of records, raw score of the last one)

    def estimate(records, skipRecords=0):
        assert skipRecords == 288
        fits.append((len(records), records[-1][2]))
        return None, None, {"fit": len(fits)}

    def update(records, params):
        (_, _, raw), = records
        return [0.001 if raw == SPIKE else 0.5], None, {**params, "updated": True}

    monkeypatch.setattr(helper_module, "estimateAnomalyLikelihoods", estimate)
    monkeypatch.setattr(helper_module, "updateAnomalyLikelihoods", update)
    return fits


def _rows(first: int, last: int, raw=lambda rowid: 0.1) -> list[ScoredRow]:
    return [ScoredRow(r, T0 + timedelta(minutes=5 * r), float(r), raw(r))
            for r in range(first, last + 1)]


def _helper(monkeypatch, scored: list[ScoredRow]) -> tuple[AnomalyLikelihoodHelper, _FakeQueries]:
    fake = _FakeQueries(scored)
    monkeypatch.setattr(helper_module, "queries", fake)
    return AnomalyLikelihoodHelper(minSampleSize=100, refreshRate=24, sampleSize=8640), fake


def test_scores_stay_zero_below_the_minimum_sample(monkeypatch, recorder) -> None:
    helper, _ = _helper(monkeypatch, _rows(1, 40))
    rows = _rows(41, 99)
    assert helper.updateModelAnomalyScores(None, "m", None, rows) is None
    assert all(r.anomaly_score == 0 and r.display_value == 0 for r in rows)
    assert recorder == []


def test_first_fit_at_100_rows_then_every_interval(monkeypatch, recorder) -> None:
    helper, fake = _helper(monkeypatch, _rows(1, 40))
    rows = _rows(41, 340)          # 300 rows: refresh interval max(24, 30) = 30
    state = helper.updateModelAnomalyScores(None, "m", None, rows)
    # fitted first on rows 1..100 (40 stored + 60 of the batch), then at rows 130, 160, ...
    assert [n for n, _ in recorder] == [100] + [100 + 30 * k for k in range(1, 9)]
    assert state["last_rowid_for_stats"] == 340
    assert all(r.anomaly_score == 0 for r in rows[:60])
    assert all(r.anomaly_score == pytest.approx(0.5) for r in rows[60:])
    assert fake.tailReads == 1


def test_early_refresh_on_a_very_high_score(monkeypatch, recorder) -> None:
    helper, _ = _helper(monkeypatch, _rows(1, 200))
    state = {"last_rowid_for_stats": 200, "params": {}}
    rows = _rows(201, 230, raw=lambda r: SPIKE if r in (202, 210, 212) else 0.1)
    state = helper.updateModelAnomalyScores(None, "m", state, rows)
    # 202 is within 3 rows of the last fit (200): no refresh; 210 refreshes; 212 does not
    # (within 3 of 210); then the regular refresh at 210 + 24 is beyond the batch
    assert recorder == [(210, SPIKE)]
    assert state["last_rowid_for_stats"] == 210
    assert [r.anomaly_score for r in rows if r.raw_anomaly_score == SPIKE] == pytest.approx(
        [0.999] * 3)


def test_window_is_capped_at_the_sample_size(monkeypatch, recorder) -> None:
    fake = _FakeQueries(_rows(1, 500))
    monkeypatch.setattr(helper_module, "queries", fake)
    helper = AnomalyLikelihoodHelper(minSampleSize=100, refreshRate=24, sampleSize=300)
    helper.updateModelAnomalyScores(None, "m", {"last_rowid_for_stats": 500, "params": {}},
                                    _rows(501, 530))
    assert recorder == [(300, 0.1)]


def test_display_value_bands() -> None:
    assert rescaleForDisplay(0) == 0
    assert logScale(0.999999) == 1.0
    green = 0.5
    assert rescaleForDisplay(green) == int(1000 + math.log(1.0000000001 - green) / math.log(1e-10))
    assert rescaleForDisplay(0.9999) < 1_000_000            # log scale just under 0.4
    assert 1_000_000 <= rescaleForDisplay(0.99995) < 1_000_000_000   # log scale 0.43
    assert rescaleForDisplay(0.999996) >= 1_000_000_000      # log scale 1
    assert rescaleForDisplay(1.0) == 1_000_000_001


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="statistics_min_sample_size"):
        AnomalyLikelihoodHelper(minSampleSize=0)
    with pytest.raises(ValueError, match="statistics_refresh_rate"):
        AnomalyLikelihoodHelper(refreshRate=0)


def test_smaller_batch_after_a_larger_one_refits_before_scoring(monkeypatch) -> None:
    """The original's rule: a batch whose first row lies past the refresh point (last fit +
    the batch's interval) is scored only after a refit on the stored rows."""
    fits: list[int] = []                      # rowid of the last record of each fit

    def estimate(records, skipRecords=0):
        fits.append(round(records[-1][2] * 1e6))
        return None, None, {"fit": len(fits)}

    def update(records, params):
        return [0.5 - params["fit"] / 1000], None, params

    monkeypatch.setattr(helper_module, "estimateAnomalyLikelihoods", estimate)
    monkeypatch.setattr(helper_module, "updateAnomalyLikelihoods", update)
    stored = _rows(1, 130, raw=lambda r: r / 1e6)
    helper, _ = _helper(monkeypatch, stored)
    state = {"last_rowid_for_stats": 100, "params": {"fit": 0}}
    large = _rows(131, 1130, raw=lambda r: r / 1e6)      # interval 100: fits at 200 .. 1100
    state = helper.updateModelAnomalyScores(None, "m", state, large)
    assert fits == list(range(200, 1101, 100))
    stored.extend(large)
    small = _rows(1131, 1150, raw=lambda r: r / 1e6)     # interval 24: 1100 + 24 < 1131
    state = helper.updateModelAnomalyScores(None, "m", state, small)
    # refit on rows up to 1130 before row 1131; the next refresh point 1154 is past the batch
    assert fits[10:] == [1130]
    assert state["last_rowid_for_stats"] == 1130
    assert [r.anomaly_score for r in small] == pytest.approx([0.5 + 11 / 1000] * 20)


def test_smaller_batch_scores_equal_the_original_rule_with_real_likelihood(monkeypatch) -> None:
    """Real likelihood functions: the small batch's scores equal a fit on the 1,130 stored rows
    followed by sequential updates (the original's order), computed here step by step."""
    raw = lambda r: ((r * 7919) % 1000) / 1000.0      # noqa: E731 - deterministic raw scores
    stored = _rows(1, 130, raw=raw)
    helper, _ = _helper(monkeypatch, stored)
    large = _rows(131, 1130, raw=raw)        # first fit on the 130 stored rows, interval 100
    state = helper.updateModelAnomalyScores(None, "m", None, large)
    assert state["last_rowid_for_stats"] + 24 < 1131     # the small batch starts past it
    stored.extend(large)
    small = _rows(1131, 1150, raw=raw)
    helper.updateModelAnomalyScores(None, "m", state, small)

    records = [r.record() for r in stored]
    _, _, params = helper_module.estimateAnomalyLikelihoods(records, skipRecords=288)
    expected = []
    for row in _rows(1131, 1150, raw=raw):
        (probability,), _, params = helper_module.updateAnomalyLikelihoods([row.record()],
                                                                           params)
        expected.append(float(1.0 - probability))
    assert [r.anomaly_score for r in small] == expected
