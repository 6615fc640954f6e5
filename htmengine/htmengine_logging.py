"""The original engine's ``getExtendedLogger``: a logger whose messages can carry a prefix
(``setLogPrefix("<test id> ")``), e.g. to tell concurrent requests or tests apart."""

from __future__ import annotations

import logging
import threading
from collections.abc import MutableMapping
from typing import Any

__all__ = ["ExtendedLogger", "getExtendedLogger"]


class ExtendedLogger(logging.LoggerAdapter[logging.Logger]):
    """A `logging.Logger` adapter that prepends its log prefix (empty by default) to every
    message."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self._logPrefix = ""

    def setLogPrefix(self, prefix: str) -> None:
        """Prefix every following message with `prefix` ("" for none)."""
        self._logPrefix = str(prefix)

    def getLogPrefix(self) -> str:
        """The current prefix."""
        return self._logPrefix

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]
                ) -> tuple[Any, MutableMapping[str, Any]]:
        """Prepend the prefix."""
        return f"{self._logPrefix}{msg}", kwargs


_loggers: dict[str, ExtendedLogger] = {}
_lock = threading.Lock()


def getExtendedLogger(loggerName: str) -> ExtendedLogger:
    """The extended logger of `loggerName` (one per name, like logging.getLogger)."""
    with _lock:
        if loggerName not in _loggers:
            _loggers[loggerName] = ExtendedLogger(logging.getLogger(loggerName))
        return _loggers[loggerName]
