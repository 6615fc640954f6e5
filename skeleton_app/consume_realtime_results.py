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
from nta_utils.errors import BusError

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


class IdleTimeout(Exception):
    """No message arrived within --idle-timeout seconds."""


def _stop_on_sigterm(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _idle(_signum: int, _frame: Any) -> None:
    raise IdleTimeout()


def _arm_idle_timer(idleTimeout: float | None) -> None:
    """(Re)start the idle timer; a message arriving restarts it."""
    if idleTimeout:
        signal.setitimer(signal.ITIMER_REAL, idleTimeout)


def consume(queueName: str, maxMessages: int = 0, idleTimeout: float | None = None) -> int:
    """Bind durable `queueName` to the results exchange and handle what arrives; returns the
    number handled once `maxMessages` (0: never) is reached or `idleTimeout` seconds pass
    without a message."""
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
        signal.signal(signal.SIGALRM, _idle)
        _arm_idle_timer(idleTimeout)
        try:
            for evt in amqpClient.readEvents():
                if isinstance(evt, amqp.messages.ConsumerMessage):
                    messageHandler(evt)
                    sys.stdout.flush()
                    handled += 1
                    if maxMessages and handled >= maxMessages:
                        break
                    _arm_idle_timer(idleTimeout)
                elif isinstance(evt, amqp.consumer.ConsumerCancellation):
                    raise amqp.exceptions.AmqpChannelError(
                        None, f"Consumer cancelled by broker: {evt!r} ({consumer!r})")
        except IdleTimeout:
            pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return handled


def _delete_queue(queueName: str) -> None:
    """Delete the consumer's queue so it does not fill up while nobody reads."""
    try:
        with amqp.synchronous_amqp_client.SynchronousAmqpClient(
                amqp.connection.getRabbitmqConnectionParameters()) as amqpClient:
            amqpClient.deleteQueue(queueName)
        print(f"Deleted queue {queueName} (--keep-queue keeps it)", file=sys.stderr)
    except BusError as exc:
        print(f"Could not delete queue {queueName}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Consume until interrupted (Ctrl-C or SIGTERM), --max-messages or --idle-timeout;
    reconnects after a lost connection (unacknowledged messages are redelivered); then deletes
    the queue unless --keep-queue."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default=DEFAULT_QUEUE, help="durable queue to bind")
    parser.add_argument("--keep-queue", action="store_true",
                        help="keep the queue on exit, so results wait for the next run "
                             "(default: delete it, so it does not fill up while nobody reads)")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="stop after this many messages (0 = run forever)")
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help="stop after this many seconds without a message")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    handled = 0
    try:
        while True:
            try:
                remaining = args.max_messages - handled if args.max_messages else 0
                handled += consume(args.queue, remaining, args.idle_timeout)
                return
            except amqp.exceptions.AmqpConnectionError as exc:
                print(f"Connection to the message bus lost ({exc}); reconnecting",
                      file=sys.stderr)
                time.sleep(RECONNECT_DELAY)
    finally:
        if not args.keep_queue:
            _delete_queue(args.queue)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.stdout.flush()
