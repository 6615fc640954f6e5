"""untilBrokerAnswers: a broker set-up step waits out an outage, stops on request, and does
not wait for a broker that refuses the connection."""

from __future__ import annotations

import pytest

from htmengine.runtime.service_support import StopFlag, untilBrokerAnswers
from nta_utils.errors import BrokerAccessError, BusConnectionError


def test_retries_a_lost_broker_until_it_answers() -> None:
    attempts = []

    def declare() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise BusConnectionError("declare queue 'q': no usable connection")
        return "declared"

    assert untilBrokerAnswers(declare, StopFlag(), retrySeconds=0.01) == (True, "declared")
    assert len(attempts) == 3


def test_a_stop_during_the_outage_ends_the_wait() -> None:
    stop = StopFlag()

    def declare() -> None:
        stop.set()
        raise BusConnectionError("declare queue 'q': no usable connection")

    assert untilBrokerAnswers(declare, stop, retrySeconds=10.0) == (False, None)


def test_a_refused_connection_is_raised_at_once() -> None:
    attempts = []

    def declare() -> None:
        attempts.append(1)
        raise BrokerAccessError("declare queue 'q': cannot connect (bad credentials?)")

    with pytest.raises(BrokerAccessError, match="bad credentials"):
        untilBrokerAnswers(declare, StopFlag(), retrySeconds=0.01)
    assert len(attempts) == 1
