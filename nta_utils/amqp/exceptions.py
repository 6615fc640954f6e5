"""Exceptions of the original AMQP client, in the `nta_utils.errors.BusError` tree."""

from __future__ import annotations

from typing import Any

from nta_utils.errors import (
    BusConnectionError,
    BusError,
    MessageNackedError,
    UnroutableMessageError,
)


class _AmqpCloseDetails(BusError):
    """The broker's reply code, text and failing method, as the original's errors carry."""

    def __init__(self, code: int | None, text: str, classId: int | None = None,
                 methodId: int | None = None) -> None:
        super().__init__(f"code={code}, text={text}")
        self.code = code
        self.text = text
        self.classId = classId
        self.methodId = methodId


class AmqpChannelError(_AmqpCloseDetails, BusError):
    """An operation failed and the broker closed the channel (e.g. code 404 NOT_FOUND for a
    missing queue or exchange, 406 PRECONDITION_FAILED)."""


class AmqpConnectionError(_AmqpCloseDetails, BusConnectionError):
    """The connection to the broker failed or was lost."""


class UnroutableError(UnroutableMessageError):
    """Published message(s) with mandatory=True were returned: no queue took them."""

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(f"{len(messages)} unroutable message(s) returned: {messages!r:.255}")
        self.messages = messages


class NackError(MessageNackedError):
    """The broker refused (nacked) the published message(s)."""

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(f"{len(messages)} nacked message(s) returned: {messages!r:.255}")
        self.messages = messages
