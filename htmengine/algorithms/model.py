"""HtmAnomalyModel: NuPIC's scalar anomaly model with time of day (encoders → SP → TM).

One ``run`` = encode the record, spatial pooling with learning, raw anomaly of the active
columns against the columns the temporal memory predicted at the previous step, then the
temporal memory step (learning and inference). The raw score of the first record is 1.0
(nothing was predicted), as in NuPIC.

State and working memory: between records a model holds only its state (see
``_resident``): the TM's packed segments, synapses, cell states and queues, the SP's changed
permanence rows, duty cycles and RNG, the encoder's buckets. The working arrays a step needs are
built when the model computes and shared by every model the process runs.

``to_bytes`` writes a checkpoint (format v2, see ``checkpoint``): a small JSON header (format
version, modelConfig, records seen, scalars) and every component's state arrays under a prefix
(``enc.``, ``sp.``, ``tm.``, ``model.``) as raw little-endian buffers compressed with zstd;
``from_bytes`` restores a model that continues bit-identically, and still reads format v1 (npz).
"""

from __future__ import annotations

import copy
import math
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from htmengine.algorithms import _resident, checkpoint
from htmengine.algorithms._types import StateDict, is_real
from htmengine.algorithms.anomaly import computeRawAnomalyScore
from htmengine.algorithms.backtracking_tm import BacktrackingTM
from htmengine.algorithms.checkpoint import ModelStateError
from htmengine.algorithms.encoders import ScalarWithTimeOfDayEncoder
from htmengine.algorithms.model_params import (
    DEFAULT_MIN_RESOLUTION,
    getScalarMetricWithTimeOfDayAnomalyParams,
)
from htmengine.algorithms.spatial_pooler import SpatialPooler
from htmengine.exceptions import InvalidInputError

FORMAT_VERSION = checkpoint.FORMAT_V3
_PREFIXES = ("enc.", "sp.", "tm.", "model.")
# arrays with long repeated runs, compressed harder (checkpoint._THOROUGH_PARAMS): the TM's
# per-synapse source index, which a saved state keeps only in its fallback form (a pool with a
# segment whose sources are not ascending; the usual form is _syn_codec's transposed gaps)
_THOROUGH = frozenset({"tm.syn_src_index"})
# arrays whose literals zstd's entropy coding shrinks little for its time, compressed without it
# (checkpoint._PLAIN_PARAMS): wide gap escapes and segment fields of the TM, the SP's escaped
# steps (and _QUICK's arrays). On a model after 10,000 records the entropy coding costs 3-5 us
# of save time per KB it saves on these (on the TM's gap nibbles, which keep it, 2.7 us).
_PLAIN = frozenset({"tm.slots", "tm.seg_dc", "tm.seg_last_active", "tm.syn_src_gap_x",
                    "tm.seg_total", "tm.seg_pos", "sp.perm_mx"})
# arrays that are mostly literals, compressed without entropy coding and with fewer match
# attempts (checkpoint._QUICK_PARAMS): the TM's permanence codes and byte escapes of the
# source gaps, the SP's distances. On a model after 10,000 records: 0.25 ms less save time
# for 14 KB more than the plain frame.
_QUICK = frozenset({"tm.syn_perm_nib", "tm.syn_src_gap_b", "sp.perm_r8"})

# A modelConfig (or a part of it): the JSON object of NuPIC's OPF model parameters.
Config: TypeAlias = dict[str, Any]

# spParams keys of the OPF params that are not SpatialPooler arguments (NuPIC's SPRegion sets
# the input width and potentialRadius itself; spatialImp is checked in _validated_model_params).
_SP_IGNORED = {"spatialImp", "inputWidth", "columnCount", "globalInhibition", "spVerbosity",
               "potentialRadius"}
# tmParams keys consumed by NuPIC's TMRegion rather than passed to the TM.
_TM_REGION_ONLY = {"temporalImp", "inputWidth", "columnCount", "verbosity"}


def _sp_kwargs(sp_params: Config, input_width: int) -> dict[str, Any]:
    """SpatialPooler arguments from OPF ``spParams`` as NuPIC's SPRegion builds them."""
    kwargs = {k: v for k, v in sp_params.items() if k not in _SP_IGNORED}
    kwargs["inputDimensions"] = (input_width,)
    kwargs["columnDimensions"] = (int(sp_params["columnCount"]),)
    kwargs["potentialRadius"] = input_width  # SPRegion: the whole input
    kwargs["globalInhibition"] = bool(sp_params.get("globalInhibition", True))
    kwargs["spVerbosity"] = sp_params.get("spVerbosity", 0)
    return kwargs


def _tm_kwargs(tm_params: Config) -> dict[str, Any]:
    """BacktrackingTM arguments from OPF ``tmParams`` as NuPIC's TMRegion passes them."""
    kwargs = {k: v for k, v in tm_params.items() if k not in _TM_REGION_ONLY}
    kwargs["numberOfCols"] = int(tm_params["columnCount"])
    return kwargs


def _validated_model_params(modelConfig: object) -> Config:
    """The ``modelParams`` of a modelConfig this model can run, or InvalidInputError."""
    if not isinstance(modelConfig, dict) or not isinstance(modelConfig.get("modelParams"), dict):
        raise InvalidInputError("modelConfig must be a dict with a 'modelParams' dict")
    params: Config = modelConfig["modelParams"]
    if params.get("inferenceType") != "TemporalAnomaly":
        raise InvalidInputError(
            f"modelConfig: inferenceType must be TemporalAnomaly, got {params.get('inferenceType')!r}")
    if not params.get("spEnable", False) or not params.get("tmEnable", False):
        raise InvalidInputError("modelConfig: spEnable and tmEnable must both be true")
    for key in ("sensorParams", "spParams", "tmParams"):
        if not isinstance(params.get(key), dict):
            raise InvalidInputError(f"modelConfig: modelParams.{key} must be a dict")
    if params["spParams"].get("spatialImp", "cpp") != "cpp":
        raise InvalidInputError("modelConfig: only nupic.core's spatial pooler (spatialImp 'cpp') "
                                f"is supported, got {params['spParams'].get('spatialImp')!r}")
    if params["tmParams"].get("temporalImp", "cpp") != "cpp":
        raise InvalidInputError("modelConfig: only the backtracking TM (temporalImp 'cpp') "
                                f"is supported, got {params['tmParams'].get('temporalImp')!r}")
    if "encoders" not in params["sensorParams"]:
        raise InvalidInputError("modelConfig: sensorParams.encoders is missing")
    return params


class HtmAnomalyModel:
    """Encoders + spatial pooler + backtracking TM producing a raw anomaly score per record."""

    def __init__(self, modelConfig: Config, encoder: ScalarWithTimeOfDayEncoder,
                 sp: SpatialPooler, tm: BacktrackingTM, records_seen: int = 0,
                 prev_predicted: npt.ArrayLike | None = None) -> None:
        self.modelConfig = modelConfig
        self.encoder = encoder
        self.sp = sp
        self.tm = tm
        self._records_seen = int(records_seen)
        self._prev_predicted = (np.zeros(0, dtype=np.int64) if prev_predicted is None
                                else np.asarray(prev_predicted, dtype=np.int64))

    @classmethod
    def create(cls, modelConfig: Config) -> HtmAnomalyModel:
        """A fresh model from ``params["modelConfig"]`` of getScalarMetricWithTimeOfDayAnomalyParams."""
        params = _validated_model_params(modelConfig)
        config = copy.deepcopy(modelConfig)
        encoder = ScalarWithTimeOfDayEncoder(copy.deepcopy(params["sensorParams"]["encoders"]))
        try:
            sp = SpatialPooler(**_sp_kwargs(params["spParams"], encoder.getWidth()))
        except TypeError as exc:
            raise InvalidInputError(f"modelConfig: bad spParams: {exc}") from exc
        tm_params = dict(params["tmParams"])
        if int(tm_params.get("columnCount", -1)) != sp.getNumColumns():
            raise InvalidInputError("modelConfig: tmParams.columnCount must equal "
                                    "spParams.columnCount")
        try:
            tm = BacktrackingTM(**_tm_kwargs(tm_params))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"modelConfig: bad tmParams: {exc}") from exc
        return cls(config, encoder, sp, tm)

    @classmethod
    def from_range(cls, minVal: float, maxVal: float,
                   minResolution: float = DEFAULT_MIN_RESOLUTION) -> HtmAnomalyModel:
        """A fresh model for values expected in [minVal, maxVal] (standard params)."""
        params = getScalarMetricWithTimeOfDayAnomalyParams(
            metricData=None, minVal=minVal, maxVal=maxVal, minResolution=minResolution)
        return cls.create(params["modelConfig"])

    @property
    def records_seen(self) -> int:
        """Number of records run through the model."""
        return self._records_seen

    def run(self, timestamp: datetime, value: float | None) -> float:
        """Feed one record (learning on) and return its raw anomaly score in [0, 1]."""
        if not isinstance(timestamp, datetime):
            raise InvalidInputError(
                f"timestamp must be a datetime, got {type(timestamp).__name__}")
        if value is not None:
            if isinstance(value, bool) or not is_real(value):
                raise InvalidInputError(f"value must be a number, got {type(value).__name__}")
            value = float(value)
            if math.isinf(value):
                raise InvalidInputError(f"value must be finite or NaN, got {value}")
        with _resident.LOCK:
            active_inputs = self.encoder.encode(timestamp, value)
            active_columns = self.sp.compute_sparse(active_inputs, True)
            score = computeRawAnomalyScore(active_columns, self._prev_predicted)
            self.tm.compute_columns(active_columns.astype(np.int32), True, True)
            self._prev_predicted = self.tm.predicted_columns()
            self._records_seen += 1
        return float(score)

    def state_nbytes(self) -> int:
        """Bytes of state this model holds at rest (what it keeps between records, without
        the working memory shared by the process's models)."""
        with _resident.LOCK:
            encoder = sum(np.asarray(v).nbytes for v in self.encoder.state_dict().values()
                          if isinstance(v, np.ndarray))
            return (encoder + self.sp.state_nbytes() + self.tm.state_nbytes()
                    + self._prev_predicted.nbytes)

    # ----------------------------------------------------------------- persistence
    def to_bytes(self) -> bytes:
        """The whole model as a format-v3 checkpoint (header + compressed state arrays)."""
        values: dict[str, int | float | str] = {}
        scalars: Config = {"modelConfig": self.modelConfig, "records_seen": self._records_seen,
                           "values": values}
        arrays: dict[str, npt.NDArray[Any]] = {"model.prev_predicted": checkpoint_int(
            self._prev_predicted)}
        with _resident.LOCK:
            states = (("enc.", self.encoder.state_dict()), ("sp.", self.sp.state_dict()),
                      ("tm.", self.tm.state_dict()))
        for prefix, state in states:
            for key, value in state.items():
                if isinstance(value, np.ndarray):
                    arrays[prefix + key] = value
                else:
                    values[prefix + key] = value.item() if isinstance(value, np.generic) else value
        return checkpoint.encode(scalars, arrays, thorough=_THOROUGH, plain=_PLAIN,
                                 quick=_QUICK)

    @classmethod
    def from_bytes(cls, data: bytes) -> HtmAnomalyModel:
        """Restore a model saved with ``to_bytes`` (format v3, or v2/v1 of earlier versions); it
        continues bit-identically. Corrupt or truncated data raises ModelStateError."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ModelStateError(f"model data must be bytes, got {type(data).__name__}")
        if checkpoint.is_v1(data):
            header, arrays = checkpoint.read_v1(data)
            flat: StateDict = {key: (value.item() if value.ndim == 0 else value)
                          for key, value in arrays.items()}
        else:
            header, arrays = checkpoint.decode(data)
            values = header.get("values")
            if not isinstance(values, dict):
                raise ModelStateError("model data header misses its values")
            flat = {key: value.copy() for key, value in arrays.items()}
            flat.update(values)
        states: dict[str, StateDict] = {prefix: {} for prefix in _PREFIXES}
        for key, value in flat.items():
            prefix = key[: key.index(".") + 1] if "." in key else ""
            if prefix not in states:
                raise ModelStateError(f"unexpected key {key!r} in model data")
            states[prefix][key[len(prefix):]] = value
        try:
            modelConfig = header["modelConfig"]
            records_seen = int(header["records_seen"])
            params = _validated_model_params(modelConfig)
            encoder = ScalarWithTimeOfDayEncoder.from_state_dict(
                copy.deepcopy(params["sensorParams"]["encoders"]), states["enc."])
            sp = SpatialPooler.from_state_dict(states["sp."])
            tm = BacktrackingTM.from_state_dict(states["tm."])
            prev_predicted = np.asarray(states["model."]["prev_predicted"], dtype=np.int64)
        except ModelStateError:
            raise
        except (KeyError, ValueError, TypeError, InvalidInputError) as exc:
            raise ModelStateError(f"model data is inconsistent: {exc}") from exc
        if prev_predicted.ndim != 1 or (prev_predicted.size and (
                prev_predicted.min() < 0 or prev_predicted.max() >= sp.getNumColumns())):
            raise ModelStateError("model data: predicted columns out of range")
        return cls(modelConfig, encoder, sp, tm, records_seen=records_seen,
                   prev_predicted=prev_predicted)


def checkpoint_int(
        values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64] | npt.NDArray[np.uint16]:
    """Column indices in the smallest exact integer type for a checkpoint."""
    return values.astype(np.uint16) if values.size and values.max() < 2 ** 16 else values
