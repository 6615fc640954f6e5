"""The original engine's synchronous AMQP client API (``nta.utils.amqp``), built on
`nta_utils.message_bus.MessageBus` (pika): `connection`, `synchronous_amqp_client`,
`messages`, `consumer`, `queue`, `exceptions`, `constants`.

Usage, as in the original README::

    from nta_utils import amqp

    with amqp.synchronous_amqp_client.SynchronousAmqpClient(
            amqp.connection.getRabbitmqConnectionParameters()) as client:
        client.declareQueue("q", durable=True)
        client.createConsumer("q")
        for evt in client.readEvents():
            ...
"""

from nta_utils.amqp import (
    connection,
    constants,
    consumer,
    exceptions,
    messages,
    queue,
    synchronous_amqp_client,
)

__all__ = ["connection", "constants", "consumer", "exceptions", "messages", "queue",
           "synchronous_amqp_client"]
