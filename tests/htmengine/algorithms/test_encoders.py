"""Encoders: hand-computed time-of-day bits, RDSE bucket/overlap rules, composite layout."""

import math
from datetime import datetime

import numpy as np
import pytest

from htmengine.algorithms.encoders import (
    DateEncoder,
    RandomDistributedScalarEncoder,
    ScalarEncoder,
    ScalarWithTimeOfDayEncoder,
)
from htmengine.algorithms.model_params import getScalarMetricWithTimeOfDayAnomalyParams
from htmengine.exceptions import InvalidInputError


def _bits(start, stop):
    return list(range(start, stop))


def _standard_encoders(minVal=0.0, maxVal=130.0):
    params = getScalarMetricWithTimeOfDayAnomalyParams(minVal=minVal, maxVal=maxVal)
    return params["modelConfig"]["modelParams"]["sensorParams"]["encoders"]


# ----------------------------------------------------------------- time of day
def test_time_of_day_width_is_54():
    enc = DateEncoder(timeOfDay=(21, 9.49), name="c0")
    # ceil(21 * 24 / 9.49) = ceil(53.11) = 54
    assert enc.getWidth() == 54


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [
        (12, 0, _bits(17, 38)),                      # centre int(12*54/24) = 27
        (6, 20, _bits(4, 25)),                       # centre int(6.333*2.25) = 14
        (0, 0, _bits(0, 11) + _bits(44, 54)),        # centre 0 wraps below zero
        (23, 59, _bits(0, 10) + _bits(43, 54)),      # centre 53 wraps past the end
        (4, 30, _bits(0, 21)),                       # centre int(10.125) = 10 → 0..20
    ],
)
def test_time_of_day_bits(hour, minute, expected):
    enc = DateEncoder(timeOfDay=(21, 9.49))
    bits = enc.encode(datetime(2015, 3, 1, hour, minute))
    assert bits.tolist() == expected


def test_time_of_day_ignores_seconds_and_date():
    enc = DateEncoder(timeOfDay=(21, 9.49))
    a = enc.encode(datetime(2015, 3, 1, 13, 45, 0))
    b = enc.encode(datetime(2019, 7, 9, 13, 45, 59))
    assert a.tolist() == b.tolist()
    assert DateEncoder.time_of_day(datetime(2015, 3, 1, 13, 45, 59)) == 13.75


def test_scalar_encoder_rejects_out_of_range_and_bad_width():
    enc = ScalarEncoder(w=21, minval=0, maxval=24, periodic=True, radius=9.49)
    with pytest.raises(InvalidInputError):
        enc.encode(24.0)
    with pytest.raises(InvalidInputError):
        ScalarEncoder(w=20, minval=0, maxval=24, periodic=True, radius=9.49)


def test_non_periodic_scalar_encoder_layout():
    enc = ScalarEncoder(w=3, minval=0, maxval=10, n=14, forced=True)
    # resolution = 10 / (14 - 3); padding 1: value 0 → bits 0..2, value 10 → bits 11..13
    assert enc.encode(0.0).tolist() == [0, 1, 2]
    assert enc.encode(10.0).tolist() == [11, 12, 13]


def test_date_encoder_rejects_non_datetime():
    with pytest.raises(InvalidInputError, match="timestamp"):
        DateEncoder(timeOfDay=(21, 9.49)).encode("2015-01-01")


# ----------------------------------------------------------------- RDSE
def test_rdse_same_value_same_sdr_and_w_bits():
    enc = RandomDistributedScalarEncoder(resolution=1.0, seed=42)
    first = enc.encode(10.0)
    assert first.size == 21 and np.unique(first).size == 21
    assert first.min() >= 0 and first.max() < 400
    enc.encode(55.0)
    assert enc.encode(10.0).tolist() == first.tolist()
    assert enc.encode(10.4).tolist() == first.tolist()  # same bucket (rounds to 0)


def test_rdse_offset_is_first_value_and_bucket_rounding():
    enc = RandomDistributedScalarEncoder(resolution=2.0)
    assert enc.offset is None
    assert enc.getBucketIndex(7.0) == 500
    assert enc.offset == 7.0
    assert enc.getBucketIndex(9.0) == 501
    assert enc.getBucketIndex(10.0) == 502  # 1.5 rounds half away from zero
    assert enc.getBucketIndex(4.0) == 498   # -1.5 rounds to -2
    assert enc.getBucketIndex(7.0 + 2.0 * 10_000) == 999
    assert enc.getBucketIndex(7.0 - 2.0 * 10_000) == 0


def test_rdse_overlap_rules_between_buckets():
    enc = RandomDistributedScalarEncoder(resolution=1.0)
    enc.encode(0.0)
    sdrs = {i: set(enc.mapBucketIndexToNonZeroBits(i).tolist()) for i in range(440, 561)}
    for i in range(440, 561):
        for j in range(i + 1, 561):
            overlap = len(sdrs[i] & sdrs[j])
            if j - i < 21:
                assert overlap == 21 - (j - i), (i, j)
            else:
                assert overlap <= 2, (i, j)


def test_rdse_neighbours_differ_at_index_mod_w():
    enc = RandomDistributedScalarEncoder(resolution=1.0)
    enc.encode(0.0)
    up = enc.mapBucketIndexToNonZeroBits(501)
    centre = enc.mapBucketIndexToNonZeroBits(500)
    down = enc.mapBucketIndexToNonZeroBits(499)
    assert np.flatnonzero(up != centre).tolist() == [501 % 21]
    assert np.flatnonzero(down != centre).tolist() == [499 % 21]


def test_rdse_clips_to_bucket_range():
    enc = RandomDistributedScalarEncoder(resolution=1.0)
    enc.encode(0.0)
    assert enc.encode(5000.0).tolist() == enc.encode(499.0).tolist()
    assert enc.encode(-5000.0).tolist() == enc.encode(-500.0).tolist()
    assert (enc.minIndex, enc.maxIndex) == (0, 999)


def test_rdse_missing_values_give_no_bits():
    enc = RandomDistributedScalarEncoder(resolution=1.0)
    assert enc.encode(float("nan")).size == 0
    assert enc.encode(None).size == 0
    assert enc.offset is None  # missing values do not set the offset



def test_rdse_rejects_bad_parameters_and_inputs():
    with pytest.raises(InvalidInputError, match="w"):
        RandomDistributedScalarEncoder(resolution=1.0, w=20)
    with pytest.raises(InvalidInputError, match="resolution"):
        RandomDistributedScalarEncoder(resolution=0.0)
    with pytest.raises(InvalidInputError, match="n"):
        RandomDistributedScalarEncoder(resolution=1.0, n=126)
    with pytest.raises(InvalidInputError, match="value"):
        RandomDistributedScalarEncoder(resolution=1.0).encode("12")


# ----------------------------------------------------------------- composite
def test_composite_layout_is_time_of_day_then_value():
    enc = ScalarWithTimeOfDayEncoder(_standard_encoders())
    assert enc.getWidth() == 54 + 400
    bits = enc.encode(datetime(2015, 1, 1, 12, 0), 65.0)
    assert bits.size == 42
    assert bits[:21].tolist() == _bits(17, 38)
    assert bits[21:].min() >= 54
    dense = enc.encode_dense(datetime(2015, 1, 1, 12, 0), 65.0)
    assert dense.dtype == np.uint8 and dense.sum() == 42 and dense[bits].all()


def test_composite_nan_value_encodes_only_time_of_day():
    enc = ScalarWithTimeOfDayEncoder(_standard_encoders())
    bits = enc.encode(datetime(2015, 1, 1, 12, 0), math.nan)
    assert bits.tolist() == _bits(17, 38)


def test_composite_resolution_comes_from_min_max():
    enc = ScalarWithTimeOfDayEncoder(_standard_encoders(minVal=0.0, maxVal=260.0))
    rdse = enc.rdse_parts()[0][1]
    assert rdse.resolution == pytest.approx(2.0)
    tiny = ScalarWithTimeOfDayEncoder(_standard_encoders(minVal=0.0, maxVal=0.01))
    assert tiny.rdse_parts()[0][1].resolution == pytest.approx(0.001)



def test_composite_rejects_unknown_encoder_type():
    with pytest.raises(InvalidInputError, match="unsupported"):
        ScalarWithTimeOfDayEncoder({"c1": {"type": "SDRCategoryEncoder", "fieldname": "c1"}})
