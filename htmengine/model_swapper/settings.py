"""model-swapper.conf as one typed settings object, read by entry points
(`SwapperSettings.from_config()`) and passed into the constructors of the interface, the
runner, the slots and the scheduler (each defaults to reading the file when given none)."""

from __future__ import annotations

from dataclasses import dataclass

from htmengine.config import swapper_config
from htmengine.model_swapper.checkpoint_policy import (
    DEFAULT_EVERY_ROWS,
    DEFAULT_MAX_AGE_SECONDS,
    CheckpointPolicy,
)
from htmengine.model_swapper.errors import InvalidSwapperSettingError
from nta_utils.config import Config
from nta_utils.dead_letter import DEFAULT_MAX_ATTEMPTS

INTERFACE_BUS = "interface_bus"
MODEL_RUNNER = "model_runner"
MODEL_SCHEDULER = "model_scheduler"
REPLAY_SOURCES = ("metric_data", "none")


@dataclass(frozen=True)
class SwapperSettings:
    """The options of model-swapper.conf (defaults: the template in conf/, where the file
    may omit an option the defaults of the code that reads it)."""

    # [interface_bus]
    results_queue: str = "htmengine.mswapper.results"
    model_input_queue_prefix: str = "htmengine.mswapper.model.input."
    scheduler_notification_queue: str = "htmengine.mswapper.scheduler.notification"
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # [model_runner]
    target_requests_per_checkpoint: int = 500
    replay_source: str = "none"
    checkpoint_every_rows: int = DEFAULT_EVERY_ROWS
    checkpoint_max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    # [model_scheduler]
    num_slots: int = 0
    memory_budget_mb: int = 0

    def __post_init__(self) -> None:
        def check(ok: bool, section: str, option: str, must: str, value: object) -> None:
            if not ok:
                raise InvalidSwapperSettingError(
                    f"model-swapper.conf [{section}] {option} must be {must}, got {value!r}")

        check(self.max_attempts >= 1, INTERFACE_BUS, "max_attempts", ">= 1",
              self.max_attempts)
        check(self.target_requests_per_checkpoint >= 1, MODEL_RUNNER,
              "target_requests_per_checkpoint", ">= 1", self.target_requests_per_checkpoint)
        check(self.replay_source in REPLAY_SOURCES, MODEL_RUNNER, "replay_source",
              " or ".join(REPLAY_SOURCES), self.replay_source)
        check(self.checkpoint_every_rows >= 1, MODEL_RUNNER, "checkpoint_every_rows", ">= 1",
              self.checkpoint_every_rows)
        check(self.checkpoint_max_age_seconds >= 0, MODEL_RUNNER,
              "checkpoint_max_age_seconds", ">= 0", self.checkpoint_max_age_seconds)
        check(self.num_slots >= 0, MODEL_SCHEDULER, "num_slots", ">= 0", self.num_slots)
        check(self.memory_budget_mb >= 0, MODEL_SCHEDULER, "memory_budget_mb", ">= 0",
              self.memory_budget_mb)

    @classmethod
    def from_config(cls, config: Config | None = None) -> SwapperSettings:
        """The settings of `config` (default: model-swapper.conf as found now). The queue
        names, target_requests_per_checkpoint and num_slots must be there (ConfigError);
        the other options default as in the class."""
        config = config if config is not None else swapper_config()
        defaults = cls()

        def optional_int(section: str, option: str, default: int) -> int:
            return (config.getint(section, option) if config.has_option(section, option)
                    else default)

        return cls(
            results_queue=config.get(INTERFACE_BUS, "results_queue"),
            model_input_queue_prefix=config.get(INTERFACE_BUS, "model_input_queue_prefix"),
            scheduler_notification_queue=config.get(INTERFACE_BUS,
                                                    "scheduler_notification_queue"),
            max_attempts=optional_int(INTERFACE_BUS, "max_attempts", defaults.max_attempts),
            target_requests_per_checkpoint=config.getint(MODEL_RUNNER,
                                                         "target_requests_per_checkpoint"),
            replay_source=(config.get(MODEL_RUNNER, "replay_source")
                           if config.has_option(MODEL_RUNNER, "replay_source")
                           else defaults.replay_source),
            checkpoint_every_rows=optional_int(MODEL_RUNNER, "checkpoint_every_rows",
                                               defaults.checkpoint_every_rows),
            checkpoint_max_age_seconds=(
                config.getfloat(MODEL_RUNNER, "checkpoint_max_age_seconds")
                if config.has_option(MODEL_RUNNER, "checkpoint_max_age_seconds")
                else defaults.checkpoint_max_age_seconds),
            num_slots=config.getint(MODEL_SCHEDULER, "num_slots"),
            memory_budget_mb=optional_int(MODEL_SCHEDULER, "memory_budget_mb",
                                          defaults.memory_budget_mb))

    def checkpoint_policy(self) -> CheckpointPolicy:
        """The checkpoint policy of [model_runner] (rows and age of uncheckpointed rows)."""
        return CheckpointPolicy(self.checkpoint_every_rows, self.checkpoint_max_age_seconds)
