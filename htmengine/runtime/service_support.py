"""Small helpers shared by the runtime services: logging set-up, stop-on-signal, waiting out a
database or broker outage."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

import sqlalchemy as sa

from nta_utils.db import database_outage, is_transient_error
from nta_utils.errors import BrokerAccessError, BusConnectionError, DatabaseError

_T = TypeVar("_T")
DATABASE_RETRY_SECONDS = 1.0
BROKER_RETRY_SECONDS = 1.0

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [pid=%(process)d] %(message)s"


def configureServiceLogging(serviceName: str) -> logging.Logger:
    """Log INFO and above (DEBUG with HTMENGINE_LOG_LEVEL=DEBUG) to stderr, which supervisord
    writes to logs/<service>.log; returns the service's logger."""
    level = os.environ.get("HTMENGINE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO), format=LOG_FORMAT,
                        stream=sys.stderr)
    # pika logs every failed connection attempt at ERROR with a traceback; MessageBus reports
    # outages once (nta_utils.outage) and raises its own errors
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    return logging.getLogger(serviceName)


SERVICE_EPILOG = """\
configuration: the INI files in $APPLICATION_CONFIG_PATH (unset: the application that
`make run` runs, skeleton_app/conf); log level: $HTMENGINE_LOG_LEVEL (default INFO).
Normally run under supervisord by `make run`."""


def service_argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a service's ``main()``: its module docstring as the description,
    so ``--help`` prints what the service does and exits before anything is touched."""
    return argparse.ArgumentParser(
        description=doc, epilog=SERVICE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)


class StopFlag:
    """Set by SIGTERM / SIGINT; services check it between batches and exit cleanly."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> StopFlag:
        """Route SIGTERM and SIGINT to this flag (main thread only)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._onSignal)
        return self

    def _onSignal(self, signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("Received signal %d; stopping", signum)
        self._event.set()

    def set(self) -> None:
        """Ask the service to stop."""
        self._event.set()

    @property
    def isSet(self) -> bool:
        """True once a stop was requested."""
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less if a stop is requested; returns isSet."""
        return self._event.wait(seconds)


def untilDatabaseAnswers(action: Callable[[], _T], stop: StopFlag,
                         retrySeconds: float = DATABASE_RETRY_SECONDS) -> tuple[bool, _T | None]:
    """Run `action` (a unit of work safe to run again), waiting out database outages: the
    outage is logged once when it starts and once when it ends (`nta_utils.outage`), and
    `action` is tried again every `retrySeconds`. Returns (True, its result), or (False, None)
    when `stop` was set during the outage."""
    while True:
        try:
            result = action()
        except (DatabaseError, sa.exc.OperationalError, sa.exc.InterfaceError) as error:
            if isinstance(error, sa.exc.DBAPIError) and not is_transient_error(error):
                raise
            database_outage().lost(error)
            if stop.wait(retrySeconds):
                return False, None
            continue
        database_outage().restored()
        return True, result


def untilBrokerAnswers(action: Callable[[], _T], stop: StopFlag,
                       retrySeconds: float = BROKER_RETRY_SECONDS) -> tuple[bool, _T | None]:
    """Run `action` (idempotent broker set-up, such as declaring queues), waiting out a broker
    outage: the bus logs the outage once when it starts and once when it ends, and `action` is
    tried again every `retrySeconds`. A refused connection (credentials, virtual host) is
    raised at once. Returns (True, its result), or (False, None) when `stop` was set."""
    while True:
        try:
            return True, action()
        except BrokerAccessError:
            raise
        except BusConnectionError:
            if stop.wait(retrySeconds):
                return False, None
