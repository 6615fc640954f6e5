"""One conformance suite over every stateful model component (river-style): each component is
described once by a `Component` spec, and the same checks run over all of them:

* determinism: two fresh instances fed the same stream give identical outputs;
* state round trip: an instance saved half-way through its persistent form (state dict through
  an ``.npz`` archive, or the model's ``to_bytes``), restored, and fed the rest of the stream
  gives the same outputs as the original, and ends in the same state;
* the seed matters (where there is one): another seed gives another stream;
* bad input (constructor arguments, values, saved state) raises the component's error:
  `InvalidInputError` (a ValueError in htmengine's tree) everywhere except the two listed in
  docs/architecture.md, which raise plain ValueError.

Component-specific behaviour (exact NuPIC values, learning rules) stays in the other test files
of this folder.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood
from htmengine.algorithms.backtracking_tm import BacktrackingTM
from htmengine.algorithms.encoders import RandomDistributedScalarEncoder, ScalarWithTimeOfDayEncoder
from htmengine.algorithms.model import HtmAnomalyModel, ModelStateError
from htmengine.algorithms.model_params import getScalarMetricWithTimeOfDayAnomalyParams
from htmengine.algorithms.nupic_random import NupicRandom
from htmengine.algorithms.spatial_pooler import SpatialPooler
from htmengine.exceptions import InvalidInputError

T0 = datetime(2015, 3, 1)


@dataclass
class Component:
    """How the suite drives one component."""

    name: str
    make: Callable[[int], Any]                    # seed -> fresh instance
    stream: Callable[[int], Sequence[Any]]        # length -> deterministic inputs
    step: Callable[[Any, Any], Any]               # (instance, input) -> comparable output
    save: Callable[[Any], bytes]                  # instance -> its persistent bytes
    load: Callable[[bytes], Any]                  # bytes -> restored instance
    error: type[Exception] = InvalidInputError
    bad: list[Callable[[Any], Any]] = field(default_factory=list)   # each must raise `error`
    seeded: bool = True
    length: int = 60


def _npz(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    return buffer.getvalue()


def _unnpz(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data)) as archive:
        return {key: (archive[key].item() if archive[key].ndim == 0 else archive[key])
                for key in archive.files}


def _values(length: int, seed: int = 5, low: float = 0.0, high: float = 100.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in rng.uniform(low, high, length)]


def _standard_encoders() -> dict[str, Any]:
    params = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0.0, maxVal=100.0)
    return dict(params["modelConfig"]["modelParams"]["sensorParams"]["encoders"])


def _records(length: int) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(minutes=5 * i), v) for i, v in enumerate(_values(length))]


SP_PARAMS = dict(inputDimensions=[454], columnDimensions=[2048], potentialRadius=454,
                 potentialPct=0.8, globalInhibition=True, numActiveColumnsPerInhArea=40,
                 synPermInactiveDec=0.0005, synPermActiveInc=0.003, synPermConnected=0.2)


def _sp_inputs(length: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    inputs = np.zeros((length, 454), dtype=np.uint8)
    for row in inputs:
        row[rng.choice(454, 42, replace=False)] = 1
    return list(inputs)


def _tm_inputs(length: int) -> list[np.ndarray]:
    """A repeating sequence of 8 column patterns with some noise, so that the TM learns."""
    rng = np.random.default_rng(9)
    patterns = [rng.choice(2048, 40, replace=False) for _ in range(8)]
    inputs = []
    for i in range(length):
        x = np.zeros(2048, dtype=np.float32)
        x[patterns[i % 8] if rng.random() > 0.1 else rng.choice(2048, 40, replace=False)] = 1
        inputs.append(x)
    return inputs


def _tm_step(tm: BacktrackingTM, x: np.ndarray) -> tuple[list[int], bytes]:
    out = tm.compute(x, True)
    return np.flatnonzero(out).tolist(), np.asarray(tm.getColConfidence()).tobytes()


def _likelihood_stream(length: int) -> list[tuple[float, float]]:
    rng = np.random.default_rng(13)
    scores = rng.uniform(0.0, 0.3, length)
    scores[length // 2::17] = 1.0
    return [(float(i % 31), float(s)) for i, s in enumerate(scores)]


COMPONENTS = [
    Component(
        "random distributed scalar encoder",
        make=lambda seed: RandomDistributedScalarEncoder(resolution=0.5, seed=seed),
        stream=lambda n: _values(n, low=-40.0, high=40.0),
        step=lambda enc, v: enc.encode(v).tolist(),
        save=lambda enc: _npz(enc.state_dict(prefix="enc.")),
        load=lambda data: RandomDistributedScalarEncoder.from_state_dict(_unnpz(data), "enc."),
        bad=[lambda enc: enc.encode("12"),
             lambda enc: RandomDistributedScalarEncoder(resolution=0.0),
             lambda enc: RandomDistributedScalarEncoder(resolution=1.0, w=20)]),
    Component(
        "scalar with time-of-day encoder",
        make=lambda seed: ScalarWithTimeOfDayEncoder(_standard_encoders()),
        stream=_records,
        step=lambda enc, record: enc.encode(*record).tolist(),
        save=lambda enc: _npz(enc.state_dict()),
        load=lambda data: ScalarWithTimeOfDayEncoder.from_state_dict(_standard_encoders(),
                                                                     _unnpz(data)),
        bad=[lambda enc: enc.encode(T0, "12"),
             lambda enc: ScalarWithTimeOfDayEncoder(
                 {**_standard_encoders(), "c1": {"type": "AdaptiveScalarEncoder",
                                                 "fieldname": "c1", "name": "c1"}})],
        seeded=False),
    Component(
        "spatial pooler",
        make=lambda seed: SpatialPooler(**SP_PARAMS, seed=seed),
        stream=_sp_inputs,
        step=lambda sp, x: sp.compute_active(x, True).tolist(),
        save=lambda sp: _npz(sp.state_dict(prefix="sp.")),
        load=lambda data: SpatialPooler.from_state_dict(_unnpz(data), prefix="sp."),
        bad=[lambda sp: sp.compute_active(np.zeros(10, dtype=np.uint8), True),
             lambda sp: SpatialPooler(**{**SP_PARAMS, "globalInhibition": False}),
             lambda sp: SpatialPooler(**SP_PARAMS, localAreaDensity=0.02)],
        length=40),
    Component(
        "backtracking temporal memory",
        make=lambda seed: BacktrackingTM(seed=seed),
        stream=_tm_inputs,
        step=_tm_step,
        save=lambda tm: _npz(tm.state_dict()),
        load=lambda data: BacktrackingTM.from_state_dict(_unnpz(data)),
        error=ValueError,
        bad=[lambda tm: tm.compute(np.zeros(49, dtype=np.float32), True),
             lambda tm: BacktrackingTM(cellsPerColumn=1),
             lambda tm: BacktrackingTM.from_state_dict({"tm_version": 1})],
        length=120),
    Component(
        "whole HTM anomaly model",
        make=lambda seed: HtmAnomalyModel.from_range(0.0, 100.0),
        stream=_records,
        step=lambda model, record: model.run(*record),
        save=lambda model: model.to_bytes(),
        load=HtmAnomalyModel.from_bytes,
        bad=[lambda model: model.run("2016-01-01 00:00:00", 1.0),
             lambda model: model.run(T0, "1.0"),
             lambda model: HtmAnomalyModel.from_bytes(model.to_bytes()[:-7]),
             lambda model: HtmAnomalyModel.from_bytes(b"not a model")],
        seeded=False, length=80),
    Component(
        "anomaly likelihood",
        make=lambda seed: AnomalyLikelihood(learningPeriod=40, estimationSamples=40,
                                            historicWindowSize=200),
        stream=_likelihood_stream,
        step=lambda al, item: al.anomalyProbability(*item),
        save=lambda al: _npz(al.state_dict()),
        load=lambda data: AnomalyLikelihood.from_state_dict(_unnpz(data)),
        bad=[lambda al: AnomalyLikelihood(learningPeriod=2.5),
             lambda al: AnomalyLikelihood(estimationSamples=200, historicWindowSize=100),
             lambda al: AnomalyLikelihood.from_state_dict({"iteration": 3})],
        seeded=False, length=300),
    Component(
        "NuPIC random stream",
        make=NupicRandom,
        stream=lambda n: [1000] * n,
        step=lambda r, upper: r.get_uint32(upper),
        save=lambda r: _npz(r.state_dict(prefix="r.")),
        load=lambda data: NupicRandom.from_state_dict(_unnpz(data), prefix="r."),
        error=ValueError,
        bad=[lambda r: NupicRandom(0), lambda r: NupicRandom(-3)]),
]


@pytest.fixture(params=COMPONENTS, ids=[c.name for c in COMPONENTS])
def component(request: pytest.FixtureRequest) -> Component:
    return request.param


def _outputs(component: Component, instance: Any, inputs: Sequence[Any]) -> list[Any]:
    return [component.step(instance, item) for item in inputs]


def test_fresh_instances_are_deterministic(component: Component) -> None:
    inputs = component.stream(component.length)
    assert _outputs(component, component.make(1956), inputs) == \
        _outputs(component, component.make(1956), inputs)


def test_saved_state_continues_bit_identically(component: Component) -> None:
    inputs = component.stream(component.length)
    half = len(inputs) // 2
    original = component.make(1956)
    _outputs(component, original, inputs[:half])
    restored = component.load(component.save(original))
    assert _outputs(component, restored, inputs[half:]) == \
        _outputs(component, original, inputs[half:])
    assert component.save(restored) == component.save(original)


SEEDED = [c for c in COMPONENTS if c.seeded]


@pytest.mark.parametrize("component", SEEDED, ids=[c.name for c in SEEDED])
def test_the_seed_matters(component: Component) -> None:
    inputs = component.stream(component.length)
    assert _outputs(component, component.make(1956), inputs) != \
        _outputs(component, component.make(7), inputs)


def test_bad_input_raises_the_components_error(component: Component) -> None:
    instance = component.make(1956)
    assert component.bad, f"{component.name} has no bad-input case"
    for case in component.bad:
        with pytest.raises(component.error):
            case(instance)


def test_model_state_errors_are_input_errors() -> None:
    """ModelStateError, raised for corrupt saved models, is in htmengine's tree."""
    assert issubclass(ModelStateError, InvalidInputError)
