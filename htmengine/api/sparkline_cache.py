"""The overview's sparklines, kept per metric and recomputed only for metrics whose rows or
scores changed since (an overview refreshed every few seconds costs one cheap query)."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from htmengine.repository import dashboard_queries
from htmengine.repository.dashboard_queries import SparkPoint


class SparklineCache:
    """Sparklines by metric uid, each with the (last rowid, last scored rowid) it was
    computed at; thread-safe."""

    def __init__(self, seconds: int, buckets: int) -> None:
        self.seconds = seconds
        self.buckets = buckets
        self._lock = threading.Lock()
        self._lines: dict[str, tuple[tuple[int, int], list[SparkPoint]]] = {}

    def get(self, conn: sa.Connection) -> dict[str, list[SparkPoint]]:
        """{uid: points} of every metric, recomputing the stale ones. Versions are read
        first, so rows arriving meanwhile only make an entry stale again."""
        versions = dashboard_queries.get_sparkline_versions(conn)
        with self._lock:
            stale = [uid for uid, version in versions.items()
                     if uid not in self._lines or self._lines[uid][0] != version]
        # most of them stale (the first load): one pass over every metric; a list of a
        # thousand uids makes MariaDB plan the same join about three times slower
        wanted = None if len(stale) * 2 > len(versions) else stale
        fresh = (dashboard_queries.get_sparklines(conn, self.seconds, self.buckets, uids=wanted)
                 if stale else {})
        with self._lock:
            for uid in stale:
                self._lines[uid] = (versions[uid], fresh.get(uid, []))
            for uid in [uid for uid in self._lines if uid not in versions]:
                del self._lines[uid]
            return {uid: self._lines[uid][1] for uid in versions if uid in self._lines}


__all__ = ["SparklineCache"]
