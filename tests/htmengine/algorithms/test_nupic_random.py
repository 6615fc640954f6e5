"""NuPIC RNG re-implementation checked against nupic.core's own unit-test vectors."""

import numpy as np
import pytest

from htmengine.algorithms.nupic_random import NupicRandom


def test_uint64_matches_nupic_core_vectors():
    r1 = NupicRandom(1)
    assert r1.get_uint64() == 3723745761376425000
    assert r1.get_uint64() == 7464235991977222558
    r2 = NupicRandom(2)
    assert r2.get_uint64() == 7543924162171776743
    assert r2.get_uint64() == 1206857364816002550
    r3 = NupicRandom(7464235991977222558)
    assert r3.get_uint64() == 3609339244249306794
    assert r3.get_uint64() == 4084830275585779078


def test_real64_matches_nupic_core_vectors():
    r1 = NupicRandom(1)
    assert r1.get_real64() == pytest.approx(0.40250281741114691, abs=1e-15)
    assert r1.get_real64() == pytest.approx(0.29331049250469476, abs=1e-15)
    r2 = NupicRandom(2)
    assert r2.get_real64() == pytest.approx(0.40256278127972323, abs=1e-15)
    assert r2.get_real64() == pytest.approx(0.6186683429386548, abs=1e-15)


def test_sample_and_shuffle_match_nupic_core_vectors():
    r = NupicRandom(42)
    population = np.array([1, 2, 3, 4], dtype=np.uint32)
    assert r.sample(population, 2).tolist() == [1, 3]
    assert r.sample(population, 4).tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        r.sample(population, 5)
    r = NupicRandom(42)
    values = np.array([1, 2, 3, 4], dtype=np.uint32)
    r.shuffle(values)
    assert values.tolist() == [1, 4, 3, 2]

