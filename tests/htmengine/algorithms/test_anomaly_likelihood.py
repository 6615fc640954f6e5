"""Tests of the anomaly likelihood (streaming class and functional API) on synthetic streams."""

from __future__ import annotations

import copy
import datetime
import json
import math

import numpy as np
import pytest

from htmengine.algorithms.anomaly_likelihood import (
    AnomalyLikelihood,
    _filterLikelihoods,
    estimateAnomalyLikelihoods,
    estimateNormal,
    tailProbability,
    updateAnomalyLikelihoods,
)
from htmengine.exceptions import InvalidInputError

T0 = datetime.datetime(2024, 1, 1)


def records(scores, values=None):
    """(timestamp, value, rawScore) records, 5 minutes apart; values default to a ramp."""
    if values is None:
        values = [float(i % 17) for i in range(len(scores))]
    return [
        (T0 + datetime.timedelta(minutes=5 * i), values[i], float(s))
        for i, s in enumerate(scores)
    ]


def noisy_scores(n, seed=3, low=0.0, high=0.2):
    return list(np.random.default_rng(seed).uniform(low, high, n))


# ---------------------------------------------------------------- statistics helpers


def test_moving_average_matches_hand_computation():
    _, averaged, params = estimateAnomalyLikelihoods(
        records([1, 2, 3, 4, 5]), averagingWindow=3
    )
    assert [r[2] for r in averaged] == [1.0, 1.5, 2.0, 3.0, 4.0]
    assert params["movingAverage"] == {"historicalValues": [3.0, 4.0, 5.0], "total": 12.0,
                                       "windowSize": 3}
    # the average of the first record of an update continues the window: (4 + 5 + 9) / 3
    _, averages, new = updateAnomalyLikelihoods(records([9]), params)
    assert averages[0] == pytest.approx(6.0)
    assert new["movingAverage"]["historicalValues"] == [4.0, 5.0, 9.0]


def test_estimate_normal_applies_floors_only_when_asked():
    quiet = np.full(50, 0.01)
    floored = estimateNormal(quiet)
    assert floored["mean"] == 0.03
    assert floored["variance"] == 0.0003
    assert floored["stdev"] == pytest.approx(math.sqrt(0.0003))
    raw = estimateNormal(quiet, performLowerBoundCheck=False)
    assert raw["mean"] == pytest.approx(0.01)
    assert raw["variance"] == 0.0 and raw["stdev"] == 0.0
    spread = estimateNormal(np.array([0.0, 1.0]))  # population variance, not sample variance
    assert spread["mean"] == 0.5 and spread["variance"] == 0.25 and spread["stdev"] == 0.5


def test_estimate_uses_floors_for_quiet_scores():
    _, _, params = estimateAnomalyLikelihoods(records([0.0] * 60))
    assert params["distribution"]["mean"] == 0.03
    assert params["distribution"]["variance"] == 0.0003


def test_tail_probability_by_hand_and_mirrored():
    dist = {"name": "normal", "mean": 0.5, "variance": 0.01, "stdev": 0.1}
    expected = 0.5 * math.erfc(2.0 / 1.4142)
    assert tailProbability(0.7, dist) == pytest.approx(expected, rel=1e-12)
    assert tailProbability(0.3, dist) == pytest.approx(expected, rel=1e-12)
    assert tailProbability(0.5, dist) == 0.5
    with pytest.raises(InvalidInputError, match="mean"):
        tailProbability(0.1, {"stdev": 1.0})


def test_filter_keeps_first_red_value_and_yellows_the_rest():
    yellow = 1.0 - 0.999
    raw = [1e-7, 0.5, 1e-6, 1e-7, 2e-6, 0.2, 1e-6, 1e-3]
    assert _filterLikelihoods(raw) == [1e-7, 0.5, 1e-6, yellow, yellow, 0.2, 1e-6, 1e-3]
    # the test is on the previous *unfiltered* value, and the boundary is inclusive
    red = 1.0 - 0.99999
    assert _filterLikelihoods([red, red]) == [red, yellow]
    assert _filterLikelihoods([red * 1.01, red]) == [red * 1.01, red]
    assert _filterLikelihoods([]) == []


def test_flat_metric_gets_null_distribution():
    scores = noisy_scores(200)
    _, _, flat = estimateAnomalyLikelihoods(records(scores, values=[7.0] * 200))
    assert flat["distribution"] == {"name": "normal", "mean": 0.5, "variance": 1e6, "stdev": 1e3}
    # the same scores with a varying metric give a real fit
    _, _, varying = estimateAnomalyLikelihoods(records(scores))
    assert varying["distribution"]["variance"] < 1.0
    # non-numeric values skip the flat-metric check
    _, _, labels = estimateAnomalyLikelihoods(records(scores, values=["on"] * 200))
    assert labels["distribution"] == varying["distribution"]


def test_skipping_every_record_gives_null_distribution():
    likelihoods, _, params = estimateAnomalyLikelihoods(records([0.1] * 20), skipRecords=20)
    assert params["distribution"]["variance"] == 1e6
    # under the null distribution every average sits near the mean: tail probability ~0.5
    assert np.allclose(likelihoods, 0.5, atol=1e-3)


def test_skip_records_excludes_learning_scores_from_fit():
    scores = [1.0] * 50 + [0.1] * 100
    _, _, with_skip = estimateAnomalyLikelihoods(records(scores), skipRecords=60)
    assert with_skip["distribution"]["mean"] == pytest.approx(0.1)
    _, _, without = estimateAnomalyLikelihoods(records(scores))
    assert without["distribution"]["mean"] > 0.35


def test_estimate_returns_filtered_tail_probabilities():
    scores = noisy_scores(300, low=0.0, high=0.1) + [1.0] * 5
    likelihoods, averaged, params = estimateAnomalyLikelihoods(records(scores))
    dist = params["distribution"]
    raw = [tailProbability(r[2], dist) for r in averaged]
    assert list(likelihoods) == _filterLikelihoods(raw)
    assert params["historicalLikelihoods"] == raw[-10:]
    # the spike is less likely than anything before it, and more so as it lasts
    assert likelihoods[-1] < likelihoods[-5] < min(likelihoods[:-5])


# ---------------------------------------------------------------- functional API contracts


def test_update_matches_estimate_on_the_same_stream():
    scores = noisy_scores(400, seed=5)
    recs = records(scores)
    _, _, params = estimateAnomalyLikelihoods(recs[:300])
    batch, batch_avgs, batch_params = updateAnomalyLikelihoods(recs[300:], params)
    # one record at a time gives the same answers as one batch
    one_by_one, running = [], params
    for rec in recs[300:]:
        lik, _, running = updateAnomalyLikelihoods([rec], running)
        one_by_one.append(lik[0])
    assert list(batch) == one_by_one
    assert running == batch_params
    # the moving average continues seamlessly: same averages as a batch estimate over all
    _, all_averaged, _ = estimateAnomalyLikelihoods(recs)
    assert list(batch_avgs) == pytest.approx([r[2] for r in all_averaged[300:]], abs=1e-12)


def test_update_does_not_modify_given_params():
    _, _, params = estimateAnomalyLikelihoods(records(noisy_scores(50)))
    before = copy.deepcopy(params)
    updateAnomalyLikelihoods(records([0.9, 0.8]), params)
    assert params == before


def test_params_json_round_trip_continues_identically():
    recs = records(noisy_scores(500, seed=11) + [1.0, 1.0, 0.0])
    _, _, params = estimateAnomalyLikelihoods(recs[:400], skipRecords=50)
    restored = json.loads(json.dumps(params))
    a, avg_a, params_a = updateAnomalyLikelihoods(recs[400:], params)
    b, avg_b, params_b = updateAnomalyLikelihoods(recs[400:], restored)
    assert list(a) == list(b) and list(avg_a) == list(avg_b)
    assert json.dumps(params_a) == json.dumps(params_b)


def test_update_without_stored_likelihoods_uses_one_neutral_value():
    _, _, params = estimateAnomalyLikelihoods(records([0.0] * 30))
    legacy = {k: v for k, v in params.items() if k != "historicalLikelihoods"}
    _, _, new = updateAnomalyLikelihoods(records([0.0]), legacy)
    assert new["historicalLikelihoods"][0] == 1.0


def test_bad_input_is_rejected_with_named_errors():
    with pytest.raises(InvalidInputError, match="at least one"):
        estimateAnomalyLikelihoods([])
    with pytest.raises(InvalidInputError, match=r"anomalyScores\[1\]"):
        estimateAnomalyLikelihoods([(T0, 1.0, 0.1), (T0, 0.2)])
    with pytest.raises(InvalidInputError, match="params"):
        updateAnomalyLikelihoods(records([0.1]), {"distribution": {}})
    with pytest.raises(InvalidInputError, match="averagingWindow"):
        estimateAnomalyLikelihoods(records([0.1]), averagingWindow=0)
    with pytest.raises(InvalidInputError, match="estimationSamples"):
        AnomalyLikelihood(estimationSamples=200, historicWindowSize=100)
    with pytest.raises(InvalidInputError, match="learningPeriod"):
        AnomalyLikelihood(learningPeriod=2.5)
    assert AnomalyLikelihood(learningPeriod=375.0)._probationaryPeriod == 475  # whole floats ok
    with pytest.warns(DeprecationWarning, match="claLearningPeriod"):
        assert AnomalyLikelihood(claLearningPeriod=7)._learningPeriod == 7


# ---------------------------------------------------------------- streaming class


def test_reports_half_during_learning_and_estimation():
    al = AnomalyLikelihood(learningPeriod=10, estimationSamples=15)
    outputs = [al.anomalyProbability(i % 5, s) for i, s in enumerate(noisy_scores(40))]
    assert outputs[:25] == [0.5] * 25
    assert all(o != 0.5 for o in outputs[25:])


def test_spike_after_quiet_stream_is_very_likely_anomalous():
    al = AnomalyLikelihood(learningPeriod=50, estimationSamples=50, reestimationPeriod=20)
    scores = noisy_scores(600, seed=7, low=0.0, high=0.05)
    for i, s in enumerate(scores):
        quiet = al.anomalyProbability(float(i % 13), s)
    assert quiet < 0.9
    spike = al.anomalyProbability(3.0, 1.0)
    assert spike > 0.9999
    assert AnomalyLikelihood.computeLogLikelihood(spike) > 0.5


def test_red_zone_filter_applies_in_the_stream():
    al = AnomalyLikelihood(learningPeriod=50, estimationSamples=50, reestimationPeriod=1000)
    for i, s in enumerate(noisy_scores(300, seed=8, low=0.0, high=0.02)):
        al.anomalyProbability(float(i % 13), s)
    first = al.anomalyProbability(1.0, 1.0)
    second = al.anomalyProbability(1.0, 1.0)
    assert first > 1 - 1e-5  # unfiltered red value
    assert second == pytest.approx(0.999)  # consecutive red value reported as yellow


def test_flat_metric_stream_is_never_anomalous():
    al = AnomalyLikelihood(learningPeriod=20, estimationSamples=20)
    outputs = [al.anomalyProbability(42.0, s) for s in noisy_scores(200, seed=9, high=1.0)]
    assert max(outputs[40:]) < 0.51  # null distribution: every average is likely


def test_class_agrees_with_functional_api():
    """The class = estimate every reestimationPeriod records on the history, then update."""
    learning, samples, period, window = 30, 40, 25, 120
    al = AnomalyLikelihood(learningPeriod=learning, estimationSamples=samples,
                           historicWindowSize=window, reestimationPeriod=period)
    recs = records(noisy_scores(400, seed=12, high=0.4))
    history: list = []
    params = None
    for i, rec in enumerate(recs):
        got = al.anomalyProbability(rec[1], rec[2], rec[0])
        if i < learning + samples:
            expected = 0.5
        else:
            if params is None or i % period == 0:
                skip = min(i, max(0, learning - max(0, i - window)))
                _, _, params = estimateAnomalyLikelihoods(history[-window:], skipRecords=skip)
            lik, _, params = updateAnomalyLikelihoods([rec], params)
            expected = 1.0 - lik[0]
        history.append(rec)
        assert got == expected, i
    assert len(al.state_dict()["historicalScores"]) == window


def test_calc_skip_records():
    assert AnomalyLikelihood._calcSkipRecords(100, 8640, 288) == 100
    assert AnomalyLikelihood._calcSkipRecords(8700, 8640, 288) == 228
    assert AnomalyLikelihood._calcSkipRecords(9000, 8640, 288) == 0


def test_log_likelihood_values():
    assert AnomalyLikelihood.computeLogLikelihood(0.5) == pytest.approx(0.0301029996659)
    assert AnomalyLikelihood.computeLogLikelihood(1.0) == pytest.approx(1.0)
    assert AnomalyLikelihood.computeLogLikelihood(0.0) == pytest.approx(0.0, abs=1e-9)
