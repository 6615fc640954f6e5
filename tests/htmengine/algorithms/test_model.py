"""HtmAnomalyModel: persistence continues bit-identically, determinism, learning behaviour."""

import copy
import csv
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from htmengine.algorithms import backtracking_tm, checkpoint
from htmengine.algorithms import model as model_module
from htmengine.algorithms._tm_persist import TM_STATE_VERSION
from htmengine.algorithms.model import HtmAnomalyModel, ModelStateError
from htmengine.algorithms.model_params import getScalarMetricWithTimeOfDayAnomalyParams
from htmengine.exceptions import InvalidInputError

REPO = Path(__file__).resolve().parents[3]
NAB_FILE = REPO.parent / "shared" / "nab" / "data" / "realKnownCause" / \
    "ec2_request_latency_system_failure.csv"
# A format-v1 checkpoint written by commit 1d18339 after the first SPLIT records of NAB_FILE
# (range as below).
V1_CHECKPOINT = Path(__file__).resolve().parent / "data" / "model_v1_ec2_300.npz"
# The same model saved in format v2 by commit 863b1a5 (TM state version 2: flat float32
# permanences, segment cells and slots; SP state format 1: touched rows as float32).
V2_TM2_CHECKPOINT = Path(__file__).resolve().parent / "data" / "model_v2_ec2_300.bin"
# The same model saved in format v3 by commit ccef38a (TM state version 3: synapse sources as
# indices into the used cells, permanences as a uint8 index; SP rows coded with perm_code).
V3_TM3_CHECKPOINT = Path(__file__).resolve().parent / "data" / "model_v3_ec2_300.bin"
RECORDS = 600
SPLIT = 300
# NuPIC's own raw anomaly scores (x40, one base-41 digit each) for the first 600 records of
# NAB's ec2_request_latency_system_failure.csv, from NAB's results/numenta (NuPIC 0.5.6).
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDE"
NUPIC_RAW_X40 = (
    "EEEy7932300100013005020102402010430221311312433131521023011111212112220001011100"
    "01112110210011010111012200121312211230202211012211111211021121012210002121122121"
    "10101002100000011210011101000002111100110000000000001111101000001000010000010021"
    "00000010000000000100110000000000001001111111000000000000000101011100000000000000"
    "00001000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000"
)


def _state(model):
    header, arrays = checkpoint.decode(model.to_bytes())
    return {**arrays, **{k: np.asarray(v) for k, v in header["values"].items()}}


def _nab_rows(limit):
    with open(NAB_FILE, newline="") as handle:
        rows = [(datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S"), float(r["value"]))
                for r in csv.DictReader(handle)]
    values = [v for _, v in rows]
    return rows[:limit], min(values), max(values)


@pytest.fixture(scope="module")
def nab_run():
    """One uninterrupted model over the first RECORDS rows of a real NAB file, with the
    value range NAB's numenta detector uses (file min/max padded by 20% of the range)."""
    rows, low, high = _nab_rows(RECORDS)
    padding = (high - low) * 0.2
    low, high = low - padding, high + padding
    model = HtmAnomalyModel.from_range(low, high)
    scores = [model.run(ts, value) for ts, value in rows]
    return rows, low, high, scores, model


def test_save_load_continues_bit_identically(nab_run):
    rows, low, high, full_scores, full_model = nab_run
    model = HtmAnomalyModel.from_range(low, high)
    first = [model.run(ts, value) for ts, value in rows[:SPLIT]]
    # Two fresh models see the same records: identical scores (determinism).
    assert first == full_scores[:SPLIT]
    blob = model.to_bytes()
    print(f"\ncheckpoint after {SPLIT} records: {len(blob) / 1e6:.2f} MB")
    restored = HtmAnomalyModel.from_bytes(blob)
    assert restored.records_seen == SPLIT
    rest = []
    for index, (ts, value) in enumerate(rows[SPLIT:]):
        if index == 150:  # a second save/load round trip mid-way
            restored = HtmAnomalyModel.from_bytes(restored.to_bytes())
        rest.append(restored.run(ts, value))
    assert rest == full_scores[SPLIT:]
    assert restored.records_seen == full_model.records_seen == RECORDS
    # Encoder, SP and model states are identical at the end (the TM's own storage layout
    # may be repacked on load; its behaviour is checked by the identical scores above).
    ours, theirs = _state(restored), _state(full_model)
    assert ours.keys() == theirs.keys()
    for key in ours:
        if not key.startswith("tm."):
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    np.testing.assert_array_equal(restored.tm.predicted_columns(),
                                  full_model.tm.predicted_columns())


def test_scores_equal_nupic_raw_scores_on_nab_file(nab_run):
    scores = nab_run[3]
    expected = [DIGITS.index(ch) / 40.0 for ch in "".join(NUPIC_RAW_X40)]
    assert len(expected) == RECORDS
    assert scores == expected


def test_scores_are_raw_anomaly_fractions(nab_run):
    scores = nab_run[3]
    assert scores[0] == 1.0  # nothing predicted before the first record
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(math.isclose(s * 40, round(s * 40)) for s in scores)  # k / 40 active columns
    assert min(scores[-200:]) < 0.5  # the model has learned something of the stream


def test_repeating_pattern_is_learned_and_a_break_is_anomalous():
    model = HtmAnomalyModel.from_range(0.0, 100.0)
    pattern = [10.0, 30.0, 50.0, 70.0, 90.0, 40.0]
    start = datetime(2016, 5, 1, 9, 0)
    scores = []
    for step in range(60 * len(pattern)):
        # Daily records at the same time of day: only the value sequence matters.
        scores.append(model.run(start + timedelta(days=step), pattern[step % len(pattern)]))
    assert scores[0] == 1.0
    learned = scores[-3 * len(pattern):]
    assert max(learned) <= 0.1, learned
    # The pattern expects 10.0 next; 90.0 (known value, wrong place) is not predicted.
    novel = model.run(start + timedelta(days=len(scores)), 90.0)
    assert novel >= 0.5


def test_missing_value_is_accepted():
    model = HtmAnomalyModel.from_range(0.0, 10.0)
    ts = datetime(2016, 1, 1)
    model.run(ts, 5.0)
    score = model.run(ts + timedelta(minutes=5), float("nan"))
    assert 0.0 <= score <= 1.0
    assert model.records_seen == 2


def test_create_from_model_config_and_bad_inputs():
    params = getScalarMetricWithTimeOfDayAnomalyParams(metricData=[0], minVal=0, maxVal=10)
    model = HtmAnomalyModel.create(params["modelConfig"])
    assert model.sp.getNumInputs() == 454 and model.sp.getNumColumns() == 2048
    with pytest.raises(InvalidInputError, match="timestamp"):
        model.run("2016-01-01 00:00:00", 1.0)
    with pytest.raises(InvalidInputError, match="value"):
        model.run(datetime(2016, 1, 1), "1.0")
    tm_cpp = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0, maxVal=10,
                                                       tmImplementation="tm_cpp")
    with pytest.raises(InvalidInputError, match="temporalImp"):
        HtmAnomalyModel.create(tm_cpp["modelConfig"])
    py_sp = copy.deepcopy(params["modelConfig"])
    py_sp["modelParams"]["spParams"]["spatialImp"] = "py"  # NuPIC's Python SP: not this one
    with pytest.raises(InvalidInputError, match="spatialImp 'cpp'.*got 'py'"):
        HtmAnomalyModel.create(py_sp)
    with pytest.raises(InvalidInputError, match="modelParams"):
        HtmAnomalyModel.create({"model": "HTMPrediction"})
    with pytest.raises(ModelStateError):
        HtmAnomalyModel.from_bytes(b"not a model")


def _expected_scores():
    return [DIGITS.index(ch) / 40.0 for ch in "".join(NUPIC_RAW_X40)]


def test_v1_checkpoint_loads_and_continues_bit_identically(nab_run):
    rows, _, _, full_scores, full_model = nab_run
    blob = V1_CHECKPOINT.read_bytes()
    assert checkpoint.is_v1(blob)
    model = HtmAnomalyModel.from_bytes(blob)
    assert model.records_seen == SPLIT
    rest = [model.run(ts, value) for ts, value in rows[SPLIT:]]
    assert rest == full_scores[SPLIT:] == _expected_scores()[SPLIT:]
    # The next save is format v2 and equals the uninterrupted model's state.
    v2 = model.to_bytes()
    assert not checkpoint.is_v1(v2)
    ours, theirs = _state(model), _state(full_model)
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_older_v2_checkpoint_loads_and_continues_bit_identically(nab_run):
    rows, _, _, full_scores, full_model = nab_run
    blob = V2_TM2_CHECKPOINT.read_bytes()
    header, arrays = checkpoint.decode(blob)
    assert header["values"]["tm.tm_version"] == 2 and "sp.touched_permanences" in arrays
    model = HtmAnomalyModel.from_bytes(blob)
    assert model.records_seen == SPLIT
    assert [model.run(ts, value) for ts, value in rows[SPLIT:]] == full_scores[SPLIT:]
    ours, theirs = _state(model), _state(full_model)
    assert ours.keys() == theirs.keys() and ours["tm.tm_version"] == TM_STATE_VERSION
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_older_v3_checkpoint_loads_and_continues_bit_identically(nab_run):
    rows, _, _, full_scores, full_model = nab_run
    blob = V3_TM3_CHECKPOINT.read_bytes()
    header, arrays = checkpoint.decode(blob)
    assert header["values"]["tm.tm_version"] == 3 and "tm.syn_src_index" in arrays
    assert "sp.perm_code" in arrays
    model = HtmAnomalyModel.from_bytes(blob)
    assert model.records_seen == SPLIT
    # saved again before it runs, it is written in the current layout and loads the same
    model = HtmAnomalyModel.from_bytes(model.to_bytes())
    assert [model.run(ts, value) for ts, value in rows[SPLIT:]] == full_scores[SPLIT:]
    ours, theirs = _state(model), _state(full_model)
    assert ours.keys() == theirs.keys() and ours["tm.tm_version"] == TM_STATE_VERSION
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_v3_checkpoint_is_raw_buffers_and_rejects_corruption(nab_run):
    model = nab_run[4]
    blob = model.to_bytes()
    assert blob[:4] == b"HTMM"
    header, arrays = checkpoint.decode(blob)
    assert header["format_version"] == 3 and header["records_seen"] == RECORDS
    # a frame for each array of _OWN_FRAME bytes and more (each read in place), then one for
    # the smaller ones of each kind: the fast frame, the plain one (no entropy coding), the
    # quick one (no entropy coding, fewer match attempts)
    def padded(name: str) -> int:
        return -(-arrays[name].nbytes // 8) * 8

    big = [name for name in arrays if arrays[name].nbytes >= checkpoint._OWN_FRAME]
    assert "tm.nslots" in big  # a uint8 per cell
    small_plain = [name for name in arrays if name in model_module._PLAIN and name not in big]
    small_quick = [name for name in arrays if name in model_module._QUICK and name not in big]
    assert small_plain and small_quick and len(big) < len(arrays) - len(small_plain)
    small_fast = [name for name in arrays
                  if name not in big and name not in small_plain and name not in small_quick]
    assert [raw for raw, _ in header["frames"]] == [padded(name) for name in big] + [
        sum(padded(name) for name in small) for small in (small_fast, small_plain, small_quick)]
    assert arrays["tm.syn_src_cells"].dtype == np.uint16  # 65,536 cells
    # sources transposed (gap codes two per byte), permanences as 4-bit codes
    n_syn = int(arrays["tm.seg_n"].astype(np.int64).sum())
    assert arrays["tm.syn_src_gap"].shape == arrays["tm.syn_perm_nib"].shape \
        == ((n_syn + 1) // 2,)
    assert "tm.syn_src_index" not in arrays and "tm.syn_perm_index" not in arrays
    assert arrays["sp.perm_nib"].dtype == np.uint8 and arrays["sp.perm_r8"].dtype == np.int8
    for cut in (0, 10, 30, len(blob) // 2, len(blob) - 1):
        with pytest.raises(ModelStateError, match="truncated|corrupt"):
            HtmAnomalyModel.from_bytes(blob[:cut])
    for position in (25, 60, len(blob) // 2, len(blob) - 3):  # header and payload
        damaged = bytearray(blob)
        damaged[position] ^= 0x5A
        with pytest.raises(ModelStateError):
            HtmAnomalyModel.from_bytes(bytes(damaged))
    # A consistent checkpoint with an out-of-range synapse is refused, not loaded.
    values = header["values"]
    bad = dict(arrays)
    bad["tm.syn_src_cells"] = arrays["tm.syn_src_cells"].astype(np.int32) + 70000
    forged = checkpoint.encode({k: v for k, v in header.items() if k != "format_version"},
                               bad)
    assert values
    with pytest.raises(ModelStateError, match="synapse source out of range"):
        HtmAnomalyModel.from_bytes(forged)
    # gap or permanence codes that do not fit the segment sizes are refused too
    more = arrays["tm.syn_src_count"].copy()
    more[0] += 1
    for name, value, what in (
            ("tm.syn_src_gap", arrays["tm.syn_src_gap"][:-1], "sources do not fit"),
            ("tm.syn_src_gap_b", arrays["tm.syn_src_gap_b"][:-1], "sources do not fit"),
            ("tm.syn_src_count", more, "sources do not fit"),
            ("tm.syn_perm_nib", arrays["tm.syn_perm_nib"][:-1], "permanence codes")):
        forged = checkpoint.encode({k: v for k, v in header.items() if k != "format_version"},
                                   {**arrays, name: value})
        with pytest.raises(ModelStateError, match=what):
            HtmAnomalyModel.from_bytes(forged)
    with pytest.raises(ModelStateError, match="version"):
        HtmAnomalyModel.from_bytes(blob[:4] + b"\x07" + blob[5:])


def test_interleaved_models_share_working_memory_and_score_as_alone(nab_run):
    rows, low, high, full_scores, _ = nab_run
    other_rows = rows[::-1]
    alone = HtmAnomalyModel.from_range(low, high)
    other_alone = [alone.run(ts, value) for ts, value in other_rows[:250]]
    first = HtmAnomalyModel.from_range(low, high)
    second = HtmAnomalyModel.from_range(low, high)
    a_scores, b_scores = [], []
    for index in range(250):
        a_scores.append(first.run(*rows[index]))
        b_scores.append(second.run(*other_rows[index]))
        if index == 120:  # a checkpoint round trip in the middle of the interleaving
            second = HtmAnomalyModel.from_bytes(second.to_bytes())
    assert a_scores == full_scores[:250]
    assert b_scores == other_alone


def test_models_of_different_ages_reuse_each_others_working_arrays_exactly(nab_run):
    """A young model hydrating into the larger arrays an old one dropped (rows to clear past
    its own pools), the old one into the young one's (too small: fresh arrays), a third
    model in between: every score equals the model's run alone."""
    rows, low, high, full_scores, _ = nab_run
    shifted = rows[100:] + rows[:100]
    alone = HtmAnomalyModel.from_range(low, high)
    shifted_alone = [alone.run(ts, value) for ts, value in shifted[:220]]
    old = HtmAnomalyModel.from_range(low, high)
    old_scores = [old.run(ts, value) for ts, value in rows[:400]]
    young = HtmAnomalyModel.from_range(low, high)
    third = HtmAnomalyModel.from_range(low, high)
    young_scores, third_scores = [], []
    for index in range(200):
        young_scores.append(young.run(*rows[index]))
        old_scores.append(old.run(*rows[400 + index]))
        if index % 3 == 0:
            third_scores.append(third.run(*shifted[index // 3]))
    assert young_scores == full_scores[:200]
    assert old_scores == full_scores[:600]
    assert third_scores == shifted_alone[:len(third_scores)]


def test_state_nbytes_is_the_state_at_rest(nab_run):
    model = nab_run[4]
    nbytes = model.state_nbytes()
    header, arrays = checkpoint.decode(model.to_bytes())
    raw = sum(a.nbytes for a in arrays.values())
    # at rest the SP keeps its changed rows as float32, about twice their saved coding; the
    # working arrays would be megabytes
    assert 0.5 * raw <= nbytes <= 2 * raw < 2_000_000
    fresh = HtmAnomalyModel.from_range(0.0, 1.0)
    assert fresh.state_nbytes() < nbytes


def test_a_model_dropped_while_it_computes_leaves_its_arrays_to_the_next_exactly(nab_run):
    """A model evicted right after it ran (dropped while it holds the working arrays) leaves
    them to the next model, which hydrates into them (larger pools, stale rows): that model
    scores as it does alone and saves the same checkpoint bytes."""
    rows, low, high, _, _ = nab_run
    young = HtmAnomalyModel.from_range(low, high)
    for row in rows[:100]:
        young.run(*row)
    young_blob = young.to_bytes()
    expected = [young.run(*row) for row in rows[100:160]]
    expected_blob = young.to_bytes()
    del young
    old = HtmAnomalyModel.from_range(low, high)
    for row in rows[:300]:
        old.run(*row)
    resumed = HtmAnomalyModel.from_bytes(young_blob)
    del old
    assert backtracking_tm._SPARE, "the dropped model's working arrays were not kept"
    assert [resumed.run(*row) for row in rows[100:160]] == expected
    assert resumed.to_bytes() == expected_blob
