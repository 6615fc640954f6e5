"""Consume anomaly results from the engine's model-results fanout exchange in near real time,
printing inference batches and model command results, as the original skeleton app did: with
the original's synchronous AMQP client (`nta_utils.amqp`)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from htmengine import htmengineerrno
from htmengine.config import app_config
from htmengine.runtime.anomaly_service import AnomalyService
from nta_utils import amqp

DEFAULT_QUEUE = "skeleton_results"
RECONNECT_DELAY = 2.0


def handleModelInferenceResults(body: bytes) -> None:
    """Print one batch of model inference results."""
    batch = AnomalyService.deserializeModelResult(body)
    metricId, metricName = batch["metric"]["uid"], batch["metric"]["name"]
    print("Handling %d model result(s) for %s - %s" % (len(batch["results"]), metricId,
                                                        metricName))
    if not batch["results"]:
        print("Empty results in model inference results batch; model=%s" % metricId)
        return
    print(metricId, batch["results"])


def handleModelCommandResult(body: bytes) -> None:
    """Print a successful defineModel / deleteModel command result."""
    modelCommandResult = AnomalyService.deserializeModelResult(body)
    if modelCommandResult["status"] != htmengineerrno.SUCCESS:
        return
    if modelCommandResult["method"] in ("defineModel", "deleteModel"):
        print("Handling `%s` for %s" % (modelCommandResult["method"],
                                        modelCommandResult.get("modelId")))
        print(modelCommandResult)


def messageHandler(message: amqp.messages.ConsumerMessage) -> None:
    """Dispatch on the ``dataType`` header (none: inference results; model-cmd-result), then
    acknowledge the message."""
    dataType = (message.properties.headers.get("dataType")
                if message.properties.headers else None)
    body = message.body if isinstance(message.body, bytes) else message.body.encode()
    if not dataType:
        handleModelInferenceResults(body)
    elif dataType == "model-cmd-result":
        handleModelCommandResult(body)
    else:
        print("Unexpected message header dataType=%s" % dataType)
    message.ack()


def _stop_on_sigterm(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def consume(queueName: str, maxMessages: int = 0) -> int:
    """Bind durable `queueName` to the results exchange and handle what arrives; returns the
    number handled once `maxMessages` (0: never) is reached."""
    exchange = app_config().get("metric_streamer", "results_exchange_name")
    handled = 0

    def configChannel(amqpClient: amqp.synchronous_amqp_client.SynchronousAmqpClient) -> None:
        amqpClient.requestQoS(prefetchCount=1)

    with amqp.synchronous_amqp_client.SynchronousAmqpClient(
            amqp.connection.getRabbitmqConnectionParameters(),
            channelConfigCb=configChannel) as amqpClient:
        amqpClient.declareExchange(exchange=exchange, exchangeType="fanout", durable=True)
        result = amqpClient.declareQueue(queueName, durable=True)
        amqpClient.bindQueue(exchange=exchange, queue=result.queue, routingKey="")
        consumer = amqpClient.createConsumer(queueName)
        for evt in amqpClient.readEvents():
            if isinstance(evt, amqp.messages.ConsumerMessage):
                messageHandler(evt)
                sys.stdout.flush()
                handled += 1
                if maxMessages and handled >= maxMessages:
                    break
            elif isinstance(evt, amqp.consumer.ConsumerCancellation):
                raise amqp.exceptions.AmqpChannelError(
                    None, f"Consumer cancelled by broker: {evt!r} ({consumer!r})")
    return handled


def main(argv: list[str] | None = None) -> None:
    """Consume until interrupted (Ctrl-C or SIGTERM) or --max-messages; reconnects after a
    lost connection (unacknowledged messages are redelivered)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default=DEFAULT_QUEUE, help="durable queue to bind")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="stop after this many messages (0 = run forever)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    remaining = args.max_messages
    while True:
        try:
            consume(args.queue, remaining)
            return
        except amqp.exceptions.AmqpConnectionError as exc:
            print(f"Connection to the message bus lost ({exc}); reconnecting", file=sys.stderr)
            time.sleep(RECONNECT_DELAY)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.stdout.flush()
