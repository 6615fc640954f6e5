"""A small client of the RabbitMQ management HTTP API (plugin ``rabbitmq_management``, port
``[management] port`` of rabbitmq.conf, default 15672): queue names, queue depths and broker
totals, with their averages over a recent period as the original engine's tools read them.
Standard library only (urllib)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nta_utils.config import Config
from nta_utils.errors import BusConnectionError, BusError, QueueNotFoundError
from nta_utils.message_bus import RABBITMQ_CONF, AmqpConnectionParams

DEFAULT_MANAGEMENT_PORT = 15672


class ManagementApiError(BusError):
    """The management API answered with an error (the message has the URL and status)."""


class ManagementApiUnavailable(BusConnectionError):
    """The management API cannot be reached (plugin not enabled, wrong host or port)."""


def managementPort(config: Config | None = None) -> int:
    """``[management] port`` of rabbitmq.conf (default 15672)."""
    config = config or Config(RABBITMQ_CONF)
    return int(config.getint("management", "port", fallback=DEFAULT_MANAGEMENT_PORT))


class RabbitmqManagementClient:
    """GET requests to ``http://host:port/api/...`` with basic authentication."""

    def __init__(self, host: str, port: int, username: str, password: str,
                 timeout: float = 5.0) -> None:
        self.baseUrl = f"http://{host}:{port}/api"
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = timeout

    @classmethod
    def fromConfig(cls, params: AmqpConnectionParams | None = None) -> RabbitmqManagementClient:
        """The management API of the broker in rabbitmq.conf (or of `params`' host)."""
        params = params or AmqpConnectionParams.from_config()
        return cls(params.host, managementPort(), params.user, params.password)

    def get(self, path: str, **query: Any) -> Any:
        """GET ``/api/<path>?<query>``; the decoded JSON.

        :raises ManagementApiUnavailable: no answer
        :raises QueueNotFoundError: 404
        :raises ManagementApiError: another HTTP error
        """
        url = f"{self.baseUrl}/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise QueueNotFoundError(f"{url}: not found (404)") from exc
            raise ManagementApiError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ManagementApiUnavailable(
                f"RabbitMQ management API unreachable at {url}: {exc} (enable it with "
                f"'rabbitmq-plugins enable rabbitmq_management')") from exc

    @staticmethod
    def _quote(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def getQueueNames(self, vhost: str) -> list[str]:
        """Names of every queue of `vhost`."""
        return [queue["name"] for queue in self.get(f"queues/{self._quote(vhost)}",
                                                     columns="name")]

    def getQueueReadyMessages(self, vhost: str, queue: str,
                              averagePeriod: int | None = None) -> float:
        """Messages ready in `queue`: now, or averaged over the last `averagePeriod` seconds
        (the broker's samples) when given and available.

        :raises QueueNotFoundError: no such queue, or none the statistics know of yet
        """
        path = f"queues/{self._quote(vhost)}/{self._quote(queue)}"
        if averagePeriod:
            details = self.get(path, lengths_age=averagePeriod, lengths_incr=1,
                               columns="messages_ready,messages_ready_details.avg")
        else:
            details = self.get(path, columns="messages_ready")
        if not isinstance(details, dict) or "messages_ready" not in details:
            # a queue declared moments ago: the statistics database has no entry yet
            raise QueueNotFoundError(
                f"queue {queue!r} of vhost {vhost!r} has no statistics (yet): {details!r}")
        average = (details.get("messages_ready_details") or {}).get("avg")
        if averagePeriod and average is not None:
            return float(average)
        return float(details["messages_ready"] or 0)

    def getTotalReadyMessages(self, averagePeriod: int | None = None) -> float:
        """Messages ready in every queue of the broker (now, or averaged as above)."""
        if averagePeriod:
            overview = self.get("overview", lengths_age=averagePeriod, lengths_incr=1,
                                columns="queue_totals")
        else:
            overview = self.get("overview", columns="queue_totals")
        totals = overview.get("queue_totals") or {}
        average = (totals.get("messages_ready_details") or {}).get("avg")
        if averagePeriod and average is not None:
            return float(average)
        return float(totals.get("messages_ready") or 0)
