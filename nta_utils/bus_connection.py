"""The connection half of `nta_utils.message_bus.MessageBus`: connecting lazily, the channels
(operations in confirm mode, deliveries, batched publishes in transaction mode), and running broker
calls with reconnect-and-retry under one `Outage` per broker, translating pika's errors into the
`nta_utils.errors.BusError` tree. MessageBus adds the queue, exchange, publish and consume
operations on top of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import pika
import pika.exceptions as pex
from pika.adapters.blocking_connection import BlockingChannel

from nta_utils.errors import (
    BrokerAccessError,
    BusConnectionError,
    BusError,
    InvalidArgumentError,
    QueueNotFoundError,
)
from nta_utils.message_bus_types import AmqpConnectionParams, BrokerChannelError
from nta_utils.outage import Outage, outage

_log = logging.getLogger("nta_utils.message_bus")
_T = TypeVar("_T")

_NOT_FOUND = 404

# Errors after which reconnecting cannot help (bad credentials, missing virtual host).
_PERMANENT_CONNECTION_ERRORS = (
    pex.AuthenticationError,
    pex.ProbableAuthenticationError,
    pex.ProbableAccessDeniedError,
    pex.IncompatibleProtocolError,
)
# Errors meaning the connection (or the channel along with it) is gone: reconnect and retry.
CONNECTION_LOST_ERRORS = (
    pex.AMQPConnectionError,
    pex.ChannelWrongStateError,
    ConnectionError,
    OSError,
)



class BusConnection:
    """A lazily opened connection to RabbitMQ with reconnect-and-retry for broker calls.

    After connection loss, `_call` reconnects with exponential back-off (at most
    `max_attempts` attempts within `retry_timeout` seconds), then raises BusConnectionError.
    """

    def __init__(self, connection_params: AmqpConnectionParams | None = None, *,
                 max_attempts: int = 8, retry_timeout: float = 15.0,
                 initial_retry_delay: float = 0.05, max_retry_delay: float = 2.0) -> None:
        if max_attempts < 1:
            raise InvalidArgumentError(f"max_attempts must be >= 1, got {max_attempts}")
        self._params = connection_params or AmqpConnectionParams.from_config()
        self._max_attempts = max_attempts
        self._retry_timeout = retry_timeout
        self._initial_retry_delay = initial_retry_delay
        self._max_retry_delay = max_retry_delay
        self._connection: pika.BlockingConnection | None = None
        self._ops_channel: BlockingChannel | None = None
        self._delivery_channel: BlockingChannel | None = None
        self._tx_channel: BlockingChannel | None = None
        self._returned: list[pika.spec.Basic.Return] = []
        self._outstanding: set[int] = set()
        self._generation = 0
        self._consuming = False
        self._closed = False
        self._outage: Outage = outage(f"the broker {self._params.describe()}")

    # ------------------------------------------------------------------ connection

    @property
    def connection_params(self) -> AmqpConnectionParams:
        """The parameters this bus connects with."""
        return self._params

    @property
    def connection_generation(self) -> int:
        """Incremented at every (re)connection; delivery tags of older generations are void."""
        return self._generation

    @property
    def outage(self) -> Outage:
        """The broker's outage state in this process (shared by its buses to the broker)."""
        return self._outage

    @property
    def is_connected(self) -> bool:
        """True while a broker connection is open."""
        return self._connection is not None and self._connection.is_open

    def socket_fileno(self) -> int | None:
        """The open connection's socket descriptor, to wait for broker input with `select`
        together with other files (the consumer then reads it); None when not connected.
        Data already read and buffered by TLS is not seen: wait with a timeout."""
        connection = self._connection
        if connection is None or not connection.is_open:
            return None
        transport = getattr(getattr(connection, "_impl", None), "_transport", None)
        sock = getattr(transport, "_sock", None)
        return sock.fileno() if sock is not None else None

    def _connect(self) -> pika.BlockingConnection:
        if self._closed:
            raise BusError("MessageBus is closed")
        if self._connection is None or not self._connection.is_open:
            self._reset_connection()
            self._connection = pika.BlockingConnection(self._params.to_pika())
            self._generation += 1
            _log.debug("Connected to %s (generation %d)", self._params.describe(),
                       self._generation)
        return self._connection

    def _reset_connection(self) -> None:
        """Forget the connection and its channels (closing them if still open)."""
        connection, self._connection = self._connection, None
        self._ops_channel = None
        self._delivery_channel = None
        self._tx_channel = None
        self._outstanding.clear()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # best effort on a broken connection
                _log.debug("Ignoring error while closing a broken connection", exc_info=True)

    def _get_ops_channel(self) -> BlockingChannel:
        connection = self._connect()
        if self._ops_channel is None or not self._ops_channel.is_open:
            channel = connection.channel()
            channel.confirm_delivery()
            self._ops_channel = channel
        return self._ops_channel

    def _get_tx_channel(self) -> BlockingChannel:
        """The channel of batched publishes: in transaction mode (one commit, and so one
        wait for the broker, per batch); its returned messages are collected in
        `_returned`."""
        connection = self._connect()
        if self._tx_channel is None or not self._tx_channel.is_open:
            channel = connection.channel()
            channel.tx_select()
            channel.add_on_return_callback(
                lambda _channel, method, _properties, _body: self._returned.append(method))
            self._tx_channel = channel
        return self._tx_channel

    def _get_delivery_channel(self) -> BlockingChannel:
        connection = self._connect()
        if self._delivery_channel is None or not self._delivery_channel.is_open:
            self._delivery_channel = connection.channel()
            self._outstanding.clear()
        return self._delivery_channel

    def _translate_channel_closed(self, exc: pex.ChannelClosedByBroker, what: str) -> BusError:
        if exc.reply_code == _NOT_FOUND:
            return QueueNotFoundError(f"{what}: not found ({exc.reply_text})")
        return BrokerChannelError(
            f"{what}: broker closed the channel with {exc.reply_code} {exc.reply_text}",
            exc.reply_code)

    def _call(self, what: str, action: Callable[[], _T], *, retry: bool = True) -> _T:
        """Run `action`, reconnecting and retrying on connection loss; translate errors."""
        deadline = time.monotonic() + self._retry_timeout
        delay = self._initial_retry_delay
        attempt = 0
        while True:
            attempt += 1
            try:
                result = action()
            except pex.ChannelClosedByBroker as exc:
                raise self._translate_channel_closed(exc, what) from exc
            except _PERMANENT_CONNECTION_ERRORS as exc:
                self._reset_connection()
                raise BrokerAccessError(
                    f"{what}: cannot connect to {self._params.describe()} (bad credentials "
                    f"or missing virtual host?): {exc!r}") from exc
            except CONNECTION_LOST_ERRORS as exc:
                self._reset_connection()
                self._outage.lost(exc)
                if not retry or attempt >= self._max_attempts or \
                        time.monotonic() + delay > deadline:
                    raise BusConnectionError(
                        f"{what}: no usable connection to {self._params.describe()} after "
                        f"{attempt} attempt(s): {exc!r}") from exc
                _log.debug("%s: connection problem (%r); reconnecting in %.2fs "
                           "(attempt %d)", what, exc, delay, attempt)
                time.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
            else:
                self._outage.restored()
                return result

    def close(self) -> None:
        """Close the connection; unacknowledged deliveries go back to their queues."""
        self._reset_connection()
        self._closed = True
