"""Outages that read like outages: one WARNING when a dependency (the broker, the database)
stops answering and one when it answers again, with how long it was away; the retries in
between are DEBUG lines, not a warning or a traceback each.

One `Outage` per dependency and process (`outage("RabbitMQ at 127.0.0.1:5672/vhost")`), shared
by every connection of the process to it, so a service with two broker connections still
reports one outage. Callers report `lost(error)` on every failed attempt and `restored()`
after every success; both are cheap when nothing changes.
"""

from __future__ import annotations

import logging
import threading
import time

_log = logging.getLogger("nta_utils.outage")

_registry: dict[str, Outage] = {}
_registry_lock = threading.Lock()


def _short(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return " ".join(str(text).split())[:300]


class Outage:
    """The up/down state of one dependency as this process sees it."""

    def __init__(self, what: str, logger: logging.Logger | None = None) -> None:
        self.what = what
        self._log = logger or _log
        self._lock = threading.Lock()
        self._since: float | None = None
        self.failures = 0
        self.outages = 0

    @property
    def down(self) -> bool:
        """True between a `lost` and the next `restored`."""
        return self._since is not None

    def lost(self, error: BaseException | str) -> bool:
        """Record a failed attempt; the first of an outage is a WARNING (True is returned),
        the others DEBUG lines."""
        with self._lock:
            self.failures += 1
            first = self._since is None
            if first:
                self._since = time.monotonic()
                self.outages += 1
        if first:
            self._log.warning("Lost %s (%s); waiting for it to come back", self.what,
                              _short(error))
        else:
            self._log.debug("%s still unavailable: %s", self.what, _short(error))
        return first

    def restored(self) -> float | None:
        """Record a success; after an outage, log one WARNING with its duration and return
        it in seconds (None when there was no outage)."""
        if self._since is None:
            return None
        with self._lock:
            since, self._since = self._since, None
        if since is None:
            return None
        duration = time.monotonic() - since
        self._log.warning("%s is back after %.1f s", self.what, duration)
        return duration


def outage(what: str) -> Outage:
    """The process-wide `Outage` of the dependency named `what`."""
    with _registry_lock:
        found = _registry.get(what)
        if found is None:
            found = _registry[what] = Outage(what)
        return found
