"""HashModel: a tiny deterministic stand-in for HtmAnomalyModel, used to test the swapper's
plumbing (its score depends on every row seen so far, in order, so a lost, repeated or
reordered row changes every later score). Importable by scheduler subprocesses through
$HTMENGINE_MODEL_FACTORY=swapper_hash_model:HashModel with this folder on PYTHONPATH."""

from __future__ import annotations

import hashlib
import struct
import time
from datetime import datetime

_HEADER = struct.Struct(">Id")


class HashModel:
    """Score = first byte of a running SHA-256 over (timestamp, value) pairs, / 255.
    modelConfig {"seed": int, "delay": seconds per row (to make streams last a while)}."""

    def __init__(self, digest: bytes = b"", count: int = 0, delay: float = 0.0) -> None:
        self.digest, self.count, self.delay = digest, count, delay

    @classmethod
    def create(cls, modelConfig: dict) -> HashModel:
        return cls(str(modelConfig.get("seed", 0)).encode(),
                   delay=float(modelConfig.get("delay", 0.0)))

    @classmethod
    def from_bytes(cls, data: bytes) -> HashModel:
        count, delay = _HEADER.unpack_from(data)
        return cls(data[_HEADER.size:], count, delay)

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.count, self.delay) + self.digest

    def run(self, timestamp: datetime, value: float) -> float:
        if value == 666:
            raise RuntimeError("the model chokes on 666")
        if self.delay:
            time.sleep(self.delay)
        self.digest = hashlib.sha256(self.digest + repr((timestamp, value)).encode()).digest()
        self.count += 1
        return self.digest[0] / 255
