"""SpatialPooler: winner selection, exact learning steps, duty cycles, bumps, persistence."""

import numpy as np
import pytest

from htmengine.algorithms import _codec
from htmengine.algorithms.spatial_pooler import SpatialPooler
from htmengine.exceptions import InvalidInputError

F32 = np.float32
STANDARD = dict(inputDimensions=[454], columnDimensions=[2048], potentialRadius=454,
                potentialPct=0.8, globalInhibition=True, numActiveColumnsPerInhArea=40,
                stimulusThreshold=0, synPermInactiveDec=0.0005, synPermActiveInc=0.003,
                synPermConnected=0.2, minPctOverlapDutyCycle=0.001, dutyCyclePeriod=1000,
                boostStrength=0.0, seed=1956)


def _tiny_sp(num_active=2):
    """8 inputs, 8 columns, every input potential; permanences set by hand afterwards."""
    sp = SpatialPooler(inputDimensions=[8], columnDimensions=[8], potentialRadius=8,
                       potentialPct=1.0, numActiveColumnsPerInhArea=num_active,
                       synPermInactiveDec=0.0005, synPermActiveInc=0.003,
                       synPermConnected=0.2, seed=1)
    for column in range(8):
        sp.setPotential(column, np.ones(8, dtype=np.uint8))
        sp.setPermanence(column, np.zeros(8, dtype=np.float32))
    return sp


def _connect(sp, column, inputs, value=0.5):
    perm = np.zeros(8, dtype=np.float32)
    perm[list(inputs)] = value
    sp.setPermanence(column, perm)


@pytest.fixture(scope="module")
def standard_sp():
    return SpatialPooler(**STANDARD)


def _random_inputs(count, seed=3):
    rng = np.random.default_rng(seed)
    inputs = np.zeros((count, 454), dtype=np.uint8)
    for row in inputs:
        row[rng.choice(454, 42, replace=False)] = 1
    return inputs


def test_tiny_winners_are_top_overlaps_with_ties_to_higher_index():
    sp = _tiny_sp(num_active=2)
    _connect(sp, 1, [0, 1, 2, 3])        # overlap 4
    for column in (2, 5, 6):
        _connect(sp, column, [0, 1, 2])  # overlap 3: tie broken toward column 6
    _connect(sp, 7, [0, 1])              # overlap 2
    active = sp.compute_active(np.ones(8, dtype=np.uint8), learn=False)
    assert active.tolist() == [1, 6]
    np.testing.assert_array_equal(sp.overlaps, [0, 4, 3, 0, 0, 3, 3, 2])


def test_tiny_zero_overlap_columns_fill_up_from_the_top_index():
    sp = _tiny_sp(num_active=2)
    _connect(sp, 3, [0])
    dense = np.zeros(8, dtype=np.uint8)
    dense[0] = 1
    active = np.zeros(8, dtype=np.uint8)
    sp.compute(dense, False, active)
    # Column 3 has overlap 1; with stimulusThreshold 0 the highest-index zero column joins.
    assert np.flatnonzero(active).tolist() == [3, 7]


def test_tiny_learning_step_is_exact():
    sp = _tiny_sp(num_active=1)
    start = np.array([0.5, 0.999, 0.0018, 0.3, 0.19, 0.0, 0.7, 0.2], dtype=np.float32)
    sp.setPermanence(0, start)
    untouched = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1], dtype=np.float32)
    sp.setPermanence(4, untouched)
    dense = np.array([1, 1, 0, 0, 1, 0, 1, 0], dtype=np.uint8)
    assert sp.compute_active(dense, learn=True).tolist() == [0]
    perm = np.zeros(8, dtype=np.float32)
    sp.getPermanence(0, perm)
    inc, dec = F32(0.003), F32(0.0005)
    expected = [start[0] + inc, F32(1.0), F32(0.0), start[3] - dec, start[4] + inc,
                F32(0.0), start[6] + inc, start[7] - dec]
    np.testing.assert_array_equal(perm, np.array(expected, dtype=np.float32))
    other = np.zeros(8, dtype=np.float32)
    sp.getPermanence(4, other)
    np.testing.assert_array_equal(other, untouched)
    counts = np.zeros(8, dtype=np.int32)
    sp.getConnectedCounts(counts)
    assert counts[0] == 4  # 0.503, 1.0, 0.2995, 0.703 (0.193 and 0.1995 are below 0.2)


def test_tiny_duty_cycles_follow_the_period_formula():
    sp = _tiny_sp(num_active=1)
    _connect(sp, 2, [0, 1])
    _connect(sp, 5, [1])
    x1 = np.array([1, 1, 0, 0, 0, 0, 0, 0], dtype=np.uint8)
    x2 = np.array([0, 1, 0, 0, 0, 0, 0, 0], dtype=np.uint8)
    assert sp.compute_active(x1, True).tolist() == [2]
    np.testing.assert_array_equal(sp.overlapDutyCycles, [0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(sp.activeDutyCycles, [0, 0, 1, 0, 0, 0, 0, 0])
    active = sp.compute_active(x2, True)  # both overlap 1: tie to the higher index, 5
    assert active.tolist() == [5]
    np.testing.assert_array_equal(sp.overlapDutyCycles, [0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(sp.activeDutyCycles, [0, 0, 0.5, 0, 0, 0.5, 0, 0])
    sp.compute_active(np.zeros(8, dtype=np.uint8), True)  # period 3, nothing overlaps
    np.testing.assert_allclose(sp.overlapDutyCycles[2], F32(2.0) / F32(3.0))


def test_tiny_weak_column_bump_even_without_boosting():
    sp = _tiny_sp(num_active=1)
    _connect(sp, 0, [0])
    weak = np.array([0.1, 0.0, 0.19, 0.5, 0.99, 0.0, 0.0, 0.0], dtype=np.float32)
    sp.setPermanence(6, weak)
    sp.minOverlapDutyCycles[6] = 0.5  # column 6 never overlaps → it is bumped
    x = np.zeros(8, dtype=np.uint8)
    x[0] = 1
    assert sp.compute_active(x, True).tolist() == [0]
    bumped = np.zeros(8, dtype=np.float32)
    sp.getPermanence(6, bumped)
    step = F32(0.2 / 10.0)
    expected = np.minimum(weak + step, F32(1.0))
    np.testing.assert_array_equal(bumped, expected)
    counts = np.zeros(8, dtype=np.int32)
    sp.getConnectedCounts(counts)
    assert counts[6] == 3  # 0.21, 0.52, 1.0 (0.12 and 0.02 stay below 0.2)


def test_min_duty_cycles_refresh_every_50_iterations():
    sp = _tiny_sp(num_active=1)
    _connect(sp, 3, [0, 1])
    x = np.array([1, 0, 0, 0, 0, 0, 0, 0], dtype=np.uint8)
    for _ in range(49):
        sp.compute_active(x, True)
    assert not sp.minOverlapDutyCycles.any()
    sp.compute_active(x, True)
    expected = F32(0.001) * sp.overlapDutyCycles.max()
    np.testing.assert_array_equal(sp.minOverlapDutyCycles, np.full(8, expected, np.float32))


def test_standard_initialisation(standard_sp):
    sp = standard_sp
    assert (sp.potential.sum(axis=1) == 363).all()  # round(454 * 0.8)
    perms = sp.permanences
    assert not perms[~sp.potential].any()
    potential_perms = perms[sp.potential]
    nonzero = potential_perms[potential_perms > 0]
    assert nonzero.min() >= F32(0.0015) and nonzero.max() <= 1.0
    scaled = nonzero.astype(np.float64) * 1e5
    assert np.abs(scaled - np.round(scaled)).max() < 0.02  # rounded to 5 decimals
    connected_share = (potential_perms >= 0.2).mean()
    assert 0.45 < connected_share < 0.55
    counts = np.zeros(2048, dtype=np.int32)
    sp.getConnectedCounts(counts)
    np.testing.assert_array_equal(counts, (perms >= F32(0.2) - F32(1e-6)).sum(axis=1))


def test_standard_winners_are_top_40_overlaps():
    sp = SpatialPooler(**STANDARD)
    for x in _random_inputs(30):
        connected = sp.permanences >= F32(0.2) - F32(1e-6)
        overlaps = connected[:, x.astype(bool)].sum(axis=1)
        order = sorted(range(2048), key=lambda c: (-overlaps[c], -c))
        active = sp.compute_active(x, learn=True)
        assert active.tolist() == sorted(order[:40])


def test_learning_off_changes_nothing_but_the_iteration(standard_sp):
    sp = SpatialPooler.from_state_dict(standard_sp.state_dict())
    before = sp.permanences.copy()
    x = _random_inputs(1)[0]
    first = sp.compute_active(x, learn=False)
    second = sp.compute_active(x, learn=False)
    assert first.tolist() == second.tolist()
    np.testing.assert_array_equal(sp.permanences, before)
    assert sp.iterationNum == 2 and sp.iterationLearnNum == 0
    assert not sp.activeDutyCycles.any()



def test_bad_arguments_are_rejected(standard_sp):
    with pytest.raises(InvalidInputError, match="globalInhibition"):
        SpatialPooler(**{**STANDARD, "globalInhibition": False})
    with pytest.raises(InvalidInputError, match="potentialPct"):
        SpatialPooler(**{**STANDARD, "potentialPct": 0.0})
    with pytest.raises(InvalidInputError, match="localAreaDensity=0.02 is not supported"):
        SpatialPooler(**STANDARD, localAreaDensity=0.02)
    assert SpatialPooler(**STANDARD, localAreaDensity=-1).numDesired == 40  # NuPIC's "unset"
    with pytest.raises(InvalidInputError, match="inputVector"):
        standard_sp.compute_active(np.zeros(10, dtype=np.uint8), True)
    with pytest.raises(InvalidInputError, match="indices"):
        standard_sp.compute_sparse(np.array([454]), True)


def test_state_holds_only_changed_columns_and_guards_regeneration():
    sp = SpatialPooler(**STANDARD)
    ever_active = set()
    for x in _random_inputs(20, seed=5):
        ever_active.update(sp.compute_active(x, True).tolist())
    state = sp.state_dict()
    assert sorted(state["touched_columns"].tolist()) == sorted(ever_active)
    assert state["perm_nib"].shape == ((len(ever_active) * 454 + 1) // 2,)
    assert "potential_bits" not in state  # regenerated from the seed
    restored = SpatialPooler.from_state_dict(state)
    np.testing.assert_array_equal(restored.permanences, sp.permanences)
    # the first coding of format 2 (a uint8 code per entry, int16 distances) is still read
    touched = state["touched_columns"]
    initial = SpatialPooler(**STANDARD).permanences[touched]
    code, m, r, x = _codec.encode_rows(sp.permanences[touched], initial, sp._code_step())
    first = {k: v for k, v in state.items()
             if k not in ("perm_nib", "perm_dm8", "perm_mx", "perm_r8", "perm_x")}
    first.update(perm_code=code, perm_m=m, perm_r=r, perm_x=x)
    np.testing.assert_array_equal(SpatialPooler.from_state_dict(first).permanences,
                                  sp.permanences)
    # format 1 (the rows as float32) is still read
    old = {k: v for k, v in state.items() if not k.startswith("perm_")}
    old.update(format=1, touched_permanences=sp.permanences[touched])
    np.testing.assert_array_equal(SpatialPooler.from_state_dict(old).permanences,
                                  sp.permanences)
    np.testing.assert_array_equal(restored.potential, sp.potential)
    np.testing.assert_array_equal(restored.connected_t, sp.connected_t)
    state["initChecksum"] = state["initChecksum"] ^ 1
    with pytest.raises(InvalidInputError, match="checksum"):
        SpatialPooler.from_state_dict(state)


def test_learning_keeps_connected_matrix_equal_to_the_permanences():
    """SP learning writes the transposed connected matrix only where a synapse crosses
    synPermConnected; after many steps it must still equal permanences >= synPermConnected,
    and the per-column counts its column sums."""
    sp = SpatialPooler(inputDimensions=(454,), columnDimensions=(2048,), potentialPct=0.8,
                       numActiveColumnsPerInhArea=40, synPermInactiveDec=0.0005,
                       synPermActiveInc=0.003, synPermConnected=0.2, seed=1956)
    rng = np.random.default_rng(7)
    for _ in range(300):
        active = np.sort(rng.choice(454, size=42, replace=False))
        sp.compute_sparse(active, True)
    expected = (sp.permanences >= sp.synPermConnected).T.astype(np.uint8)
    assert np.array_equal(sp.connected_t, expected)
    assert np.array_equal(sp.connectedCounts, expected.sum(axis=0))
    assert sp.touched.sum() > 40  # learning really changed many columns
