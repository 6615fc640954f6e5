"""One contract, two buses: every test here runs against the in-memory `StubBus` and against
`MessageBus` on the real RabbitMQ (this session's private vhost), so the stub used by the
services' fast unit tests behaves as the broker does."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from nta_utils.bus import Bus
from nta_utils.errors import BusError, QueueNotFoundError, UnroutableMessageError
from nta_utils.message_bus import MessageBus
from nta_utils.message_bus_types import (
    BrokerChannelError,
    ConsumerCancelledError,
    OutgoingMessage,
    UnknownDeliveryTagError,
)
from nta_utils.stub_bus import StubBroker, StubBus

Connect = Callable[[], Bus]


@pytest.fixture(params=["stub", pytest.param("rabbitmq", marks=pytest.mark.integration)])
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """Opens connections to one broker (all closed at the end)."""
    opened: list[Bus] = []
    if request.param == "stub":
        broker = StubBroker()

        def factory() -> Bus:
            return StubBus(broker)
    else:
        request.getfixturevalue("engine_env")

        def factory() -> Bus:
            return MessageBus()

    def connect_() -> Bus:
        bus = factory()
        opened.append(bus)
        return bus

    yield connect_
    for bus in opened:
        bus.close()


@pytest.fixture()
def names(connect: Connect) -> Iterator[Callable[[str], str]]:
    """Unique queue / exchange names, deleted at the end."""
    made: list[str] = []

    def name(kind: str) -> str:
        made.append(f"conformance.{kind}.{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield name
    cleaner = connect()
    for made_name in made:
        cleaner.delete_queue(made_name)
        cleaner.delete_exchange(made_name)


@pytest.fixture()
def bus(connect: Connect) -> Bus:
    return connect()


@pytest.fixture()
def queue(bus: Bus, names: Callable[[str], str]) -> str:
    name = names("q")
    bus.declare_queue(name)
    return name


def test_both_implement_the_protocol(bus: Bus) -> None:
    assert isinstance(bus, Bus)


def test_publish_get_ack_keeps_body_headers_and_properties(bus: Bus, queue: str) -> None:
    bus.publish_to_queue(queue, b"\x00body", headers={"seq": 7, "who": "me"},
                         properties={"content_type": "application/json", "message_id": "m-1"})
    assert bus.message_count(queue) == 1
    assert bus.declare_queue(queue).message_count == 1
    message = bus.get(queue)
    assert message is not None
    assert (message.body, message.redelivered, message.exchange, message.routing_key) == (
        b"\x00body", False, "", queue)
    assert message.headers == {"seq": 7, "who": "me"}
    assert message.properties["content_type"] == "application/json"
    assert message.properties["message_id"] == "m-1"
    assert message.properties["delivery_mode"] == 2
    assert bus.get(queue) is None
    bus.ack(message.delivery_tag)
    assert bus.message_count(queue) == 0
    with pytest.raises(UnknownDeliveryTagError):
        bus.ack(message.delivery_tag)


def test_get_tells_how_many_ready_messages_it_left(bus: Bus, queue: str) -> None:
    for i in range(3):
        bus.publish_to_queue(queue, f"m{i}".encode())
    taken = [bus.get(queue) for _ in range(3)]
    assert [(m.body, m.remaining) for m in taken if m is not None] == [
        (b"m0", 2), (b"m1", 1), (b"m2", 0)]
    assert bus.get(queue) is None
    bus.ack_all()


def test_transient_messages_are_marked(bus: Bus, queue: str) -> None:
    bus.publish_to_queue(queue, b"t", persistent=False)
    message = bus.get(queue)
    assert message is not None and message.properties["delivery_mode"] == 1


def test_consume_in_order_then_none_when_idle(bus: Bus, queue: str) -> None:
    for i in range(3):
        bus.publish_to_queue(queue, f"m{i}".encode())
    received = []
    for message in bus.consume(queue, inactivity_timeout=0.3):
        if message is None:
            break
        received.append(message)
    assert [m.body for m in received] == [b"m0", b"m1", b"m2"]
    bus.ack(received[-1].delivery_tag, multiple=True)
    assert bus.message_count(queue) == 0


def test_nack_requeues_at_the_head_as_redelivered_or_drops(bus: Bus, queue: str) -> None:
    bus.publish_to_queue(queue, b"first")
    bus.publish_to_queue(queue, b"second")
    first = bus.get(queue)
    assert first is not None
    bus.nack(first.delivery_tag)
    again = bus.get(queue)
    assert again is not None and (again.body, again.redelivered) == (b"first", True)
    bus.nack(again.delivery_tag, requeue=False)
    second = bus.get(queue)
    assert second is not None and (second.body, second.redelivered) == (b"second", False)
    bus.ack(second.delivery_tag)
    assert bus.get(queue) is None


def test_unsettled_deliveries_return_when_the_connection_closes(connect: Connect,
                                                                queue: str) -> None:
    first = connect()
    first.publish_to_queue(queue, b"a")
    first.publish_to_queue(queue, b"b")
    taken = [first.get(queue), first.get(queue)]
    assert all(m is not None for m in taken)
    first.close()
    other = connect()
    redelivered = [other.get(queue), other.get(queue)]
    assert [(m.body, m.redelivered) for m in redelivered if m is not None] == [
        (b"a", True), (b"b", True)]
    other.ack_all()
    assert other.message_count(queue) == 0


def test_ack_multiple_and_nack_all(bus: Bus, queue: str) -> None:
    for i in range(4):
        bus.publish_to_queue(queue, str(i).encode())
    tags = [m.delivery_tag for m in (bus.get(queue) for _ in range(4)) if m is not None]
    bus.ack(tags[1], multiple=True)
    with pytest.raises(UnknownDeliveryTagError):
        bus.ack(tags[0])
    bus.nack_all()
    bodies = [m.body for m in (bus.get(queue) for _ in range(2)) if m is not None]
    assert bodies == [b"2", b"3"]
    bus.ack_all()
    bus.ack_all()   # nothing outstanding: no-op
    assert bus.message_count(queue) == 0


def test_prefetch_limits_unsettled_deliveries_of_a_consumer(bus: Bus, queue: str) -> None:
    for i in range(4):
        bus.publish_to_queue(queue, str(i).encode())
    consumer = bus.consume(queue, prefetch=2, inactivity_timeout=0.3)
    first, second, third = next(consumer), next(consumer), next(consumer)
    assert first is not None and second is not None and third is None
    bus.ack(second.delivery_tag, multiple=True)
    fourth = next(consumer)
    assert fourth is not None and fourth.body == b"2"
    consumer.close()   # type: ignore[attr-defined]


def test_auto_ack_deliveries_need_no_settling(connect: Connect, queue: str) -> None:
    first = connect()
    first.publish_to_queue(queue, b"x")
    consumer = first.consume(queue, auto_ack=True, inactivity_timeout=0.3)
    message = next(consumer)
    assert message is not None and message.body == b"x"
    consumer.close()   # type: ignore[attr-defined]
    first.close()
    assert connect().message_count(queue) == 0


def test_one_consumer_per_connection(bus: Bus, queue: str) -> None:
    consumer = bus.consume(queue, inactivity_timeout=0.2)
    assert next(consumer) is None
    with pytest.raises(BusError):
        next(bus.consume(queue, inactivity_timeout=0.2))
    consumer.close()   # type: ignore[attr-defined]


def test_deleting_the_queue_cancels_its_consumer(connect: Connect, queue: str) -> None:
    consumer_bus, other = connect(), connect()
    consumer = consumer_bus.consume(queue, inactivity_timeout=0.2)
    assert next(consumer) is None
    other.delete_queue(queue)
    with pytest.raises(ConsumerCancelledError):
        for _ in range(20):
            next(consumer)


def test_fanout_exchange_copies_to_every_bound_queue(bus: Bus,
                                                     names: Callable[[str], str]) -> None:
    exchange, bound, also_bound, unbound = names("x"), names("q"), names("q"), names("q")
    bus.declare_fanout_exchange(exchange)
    for q in (bound, also_bound, unbound):
        bus.declare_queue(q)
    bus.bind_queue(bound, exchange)
    bus.bind_queue(also_bound, exchange)
    bus.publish(exchange, "ignored", b"news")
    assert [bus.message_count(q) for q in (bound, also_bound, unbound)] == [1, 1, 0]
    message = bus.get(bound)
    assert message is not None and (message.exchange, message.routing_key) == (
        exchange, "ignored")
    bus.unbind_queue(also_bound, exchange)
    bus.publish(exchange, "", b"more")
    assert [bus.message_count(q) for q in (bound, also_bound)] == [1, 1]


def test_direct_and_topic_exchanges_route_by_key(bus: Bus, names: Callable[[str], str]) -> None:
    direct, topic, red, blue, star, hash_ = (names("x"), names("x"), names("q"), names("q"),
                                             names("q"), names("q"))
    bus.declare_exchange(direct, "direct")
    bus.declare_exchange(topic, "topic")
    for q in (red, blue, star, hash_):
        bus.declare_queue(q)
    bus.bind_queue(red, direct, "red")
    bus.bind_queue(blue, direct, "blue")
    bus.bind_queue(star, topic, "metric.*")
    bus.bind_queue(hash_, topic, "metric.#")
    bus.publish(direct, "red", b"r")
    for key in ("metric", "metric.cpu", "metric.cpu.host"):
        bus.publish(topic, key, key.encode())
    assert [bus.message_count(q) for q in (red, blue, star, hash_)] == [1, 0, 1, 3]


def test_unroutable_and_missing_targets(bus: Bus, names: Callable[[str], str]) -> None:
    exchange, missing = names("x"), names("q")
    bus.declare_fanout_exchange(exchange)
    with pytest.raises(UnroutableMessageError):
        bus.publish(exchange, "", b"nobody listens")
    bus.publish(exchange, "", b"dropped", mandatory=False)
    with pytest.raises(UnroutableMessageError):
        bus.publish_to_queue(missing, b"x")
    with pytest.raises(QueueNotFoundError):
        bus.publish(names("x"), "", b"x")
    with pytest.raises(QueueNotFoundError):
        bus.get(missing)
    with pytest.raises(QueueNotFoundError):
        bus.purge_queue(missing)
    with pytest.raises(QueueNotFoundError):
        bus.message_count(missing)
    with pytest.raises(QueueNotFoundError):
        bus.declare_queue(missing, passive=True)
    with pytest.raises(QueueNotFoundError):
        bus.declare_exchange(names("x"), passive=True)
    assert not bus.queue_exists(missing)
    bus.declare_queue(missing)
    with pytest.raises(QueueNotFoundError):
        bus.bind_queue(missing, names("x"))
    bus.delete_queue(names("q"))       # missing: not an error
    bus.delete_exchange(names("x"))    # likewise
    assert bus.queue_exists(missing)


def test_publish_many_routes_in_order_and_names_the_unroutable(
        bus: Bus, queue: str, names: Callable[[str], str]) -> None:
    exchange, missing, other = names("x"), names("q"), names("q")
    bus.declare_fanout_exchange(exchange)
    bus.declare_queue(other)
    bus.bind_queue(other, exchange)
    batch = [
        OutgoingMessage("", queue, b"a", headers={"seq": 1}),
        OutgoingMessage("", missing, b"lost"),                     # returned
        OutgoingMessage(exchange, "", b"fan", persistent=False),
        OutgoingMessage("", missing, b"dropped", mandatory=False),  # silently dropped
        OutgoingMessage("", queue, b"b", properties={"message_id": "m-2"}),
        OutgoingMessage("", missing, b"lost too"),                 # returned
    ]
    assert bus.publish_many(batch) == [1, 5]
    assert bus.publish_many([]) == []
    first, second = bus.get(queue), bus.get(queue)
    assert first is not None and second is not None and bus.get(queue) is None
    assert (first.body, first.headers, first.properties["delivery_mode"]) == (
        b"a", {"seq": 1}, 2)
    assert (second.body, second.properties["message_id"]) == (b"b", "m-2")
    fanned = bus.get(other)
    assert fanned is not None and (fanned.body, fanned.properties["delivery_mode"]) == (
        b"fan", 1)
    bus.ack_all()
    # the bus stays usable for single publishes and further batches
    bus.publish_to_queue(queue, b"c")
    assert bus.publish_many([OutgoingMessage("", queue, b"d")]) == []
    assert bus.message_count(queue) == 2
    with pytest.raises(QueueNotFoundError):
        bus.publish_many([OutgoingMessage(names("x"), "", b"x")])
    assert bus.publish_many([OutgoingMessage("", queue, b"e")]) == []
    assert bus.message_count(queue) == 3
    with pytest.raises(TypeError):
        bus.publish_many([OutgoingMessage("", queue, "text")])  # type: ignore[arg-type]


def test_inequivalent_redeclaration_and_conditional_delete(bus: Bus, queue: str,
                                                          names: Callable[[str], str]) -> None:
    with pytest.raises(BrokerChannelError) as caught:
        bus.declare_queue(queue, durable=False)
    assert caught.value.reply_code == 406
    exchange = names("x")
    bus.declare_exchange(exchange, "fanout")
    with pytest.raises(BrokerChannelError):
        bus.declare_exchange(exchange, "direct")
    bus.publish_to_queue(queue, b"keep")
    with pytest.raises(BrokerChannelError):
        bus.delete_queue(queue, if_empty=True)
    assert bus.purge_queue(queue) == 1
    bus.delete_queue(queue, if_empty=True)
    assert not bus.queue_exists(queue)


def test_bad_arguments_are_refused(bus: Bus, queue: str) -> None:
    with pytest.raises(TypeError):
        bus.publish_to_queue(queue, "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        bus.publish_to_queue(queue, b"x", properties={"colour": "red"})
    with pytest.raises(ValueError):
        bus.declare_queue("")
    with pytest.raises(ValueError):
        next(bus.consume(queue, prefetch=-1))
    with pytest.raises(BusError):
        closed = bus
        closed.close()
        closed.declare_queue(queue)
