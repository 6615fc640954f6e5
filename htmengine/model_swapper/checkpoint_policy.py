"""When a resident model with uncheckpointed rows is checkpointed (model-swapper.conf
``[model_runner]``): after ``checkpoint_every_rows`` rows, when its oldest uncheckpointed row
was applied ``checkpoint_max_age_seconds`` ago, before it is evicted (unless a load can replay
its few rows from the stored rows) and when its slot exits (model_swapper.settings reads
them). Between checkpoints its input is acked once the
results are published, and a crash is repaired by replaying the stored rows after the
checkpoint (replay_source)."""

from __future__ import annotations

from dataclasses import dataclass

from htmengine.model_swapper.errors import InvalidSwapperSettingError

DEFAULT_EVERY_ROWS = 1000
DEFAULT_MAX_AGE_SECONDS = 6 * 3600.0


@dataclass(frozen=True)
class CheckpointPolicy:
    """Row count and age limits of a model's uncheckpointed rows."""

    everyRows: int = DEFAULT_EVERY_ROWS
    maxAgeSeconds: float = DEFAULT_MAX_AGE_SECONDS

    def __post_init__(self) -> None:
        if self.everyRows < 1:
            raise InvalidSwapperSettingError(f"checkpoint_every_rows must be >= 1, got "
                                             f"{self.everyRows}")
        if self.maxAgeSeconds < 0:
            raise InvalidSwapperSettingError(f"checkpoint_max_age_seconds must be >= 0, got "
                                             f"{self.maxAgeSeconds}")

    def due(self, rows: int, dirtySince: float | None, now: float) -> bool:
        """True when `rows` uncheckpointed rows, the first applied at `dirtySince`, should
        be checkpointed at time `now`."""
        if rows <= 0:
            return False
        return rows >= self.everyRows or (dirtySince is not None
                                          and now - dirtySince >= self.maxAgeSeconds)
