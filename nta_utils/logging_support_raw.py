"""The original ``nta.utils.logging_support_raw.LoggingSupport``: one-call logging set-up for
services, tools and test programs (level from $HTMENGINE_LOG_LEVEL, default INFO)."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

__all__ = ["LoggingSupport"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [pid=%(process)d] %(message)s"
TOOL_FORMAT = "%(levelname)s %(name)s: %(message)s"


class LoggingSupport:
    """Logging initialisation of the original's programs (class methods only)."""

    @staticmethod
    def _level(default: str) -> int:
        name = os.environ.get("HTMENGINE_LOG_LEVEL", default).upper()
        level = logging.getLevelName(name)
        return level if isinstance(level, int) else logging.INFO

    @classmethod
    def initLogging(cls, loggingLevel: str | int | None = None, stream: TextIO | None = None,
                    logFormat: str = LOG_FORMAT) -> None:
        """Log to `stream` (stderr) at `loggingLevel` (default: $HTMENGINE_LOG_LEVEL or INFO);
        leaves an already configured root logger alone, like logging.basicConfig."""
        if loggingLevel is None:
            level = cls._level("INFO")
        elif isinstance(loggingLevel, str):
            level = cls._level(loggingLevel)
        else:
            level = int(loggingLevel)
        logging.basicConfig(level=level, format=logFormat, stream=stream or sys.stderr)
        logging.getLogger("pika").setLevel(logging.CRITICAL)   # outages: nta_utils.outage

    @classmethod
    def initService(cls) -> None:
        """Logging of a long-running service (stderr, which supervisord captures)."""
        cls.initLogging()

    @classmethod
    def initTool(cls) -> None:
        """Logging of a command-line tool (short lines on stderr)."""
        cls.initLogging(logFormat=TOOL_FORMAT)

    @classmethod
    def initTestApp(cls) -> None:
        """Logging of a test program."""
        cls.initLogging()
