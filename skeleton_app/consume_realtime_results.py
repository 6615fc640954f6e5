"""Consume anomaly results from the engine's model-results fanout exchange in near real time,
printing inference batches and model command results as the original skeleton app did."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from htmengine.config import app_config
from htmengine.model_swapper.errors import SUCCESS
from htmengine.runtime.results_serialization import deserializeModelResult
from nta_utils.errors import BusConnectionError, BusError
from nta_utils.message_bus import Message, MessageBus

DEFAULT_QUEUE = "skeleton_results"
RECONNECT_DELAY = 2.0


def handle_inference_results(body: bytes) -> None:
    """Print one batch of model inference results."""
    batch = deserializeModelResult(body)
    metric_id, metric_name = batch["metric"]["uid"], batch["metric"]["name"]
    print("Handling %d model result(s) for %s - %s" % (len(batch["results"]), metric_id,
                                                        metric_name))
    if not batch["results"]:
        print("Empty results in model inference results batch; model=%s" % metric_id)
        return
    print(metric_id, batch["results"])


def handle_command_result(body: bytes) -> None:
    """Print a successful defineModel / deleteModel command result."""
    result = deserializeModelResult(body)
    if result["status"] != SUCCESS:
        return
    if result["method"] in ("defineModel", "deleteModel"):
        print("Handling `%s` for %s" % (result["method"], result.get("modelId")))
        print(result)


def handle_message(message: Message) -> None:
    """Dispatch on the ``dataType`` header: none = inference results, model-cmd-result."""
    data_type = (message.headers or {}).get("dataType")
    if not data_type:
        handle_inference_results(message.body)
    elif data_type == "model-cmd-result":
        handle_command_result(message.body)
    else:
        print("Unexpected message header dataType=%s" % data_type)


def _stop_on_sigterm(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    """Bind a durable queue to the results exchange and print what arrives, until interrupted
    (Ctrl-C or SIGTERM), --max-messages or --idle-timeout; then delete the queue unless
    --keep-queue."""
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
    exchange = app_config().get("metric_streamer", "results_exchange_name")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        _consume(exchange, args.queue, args.max_messages, args.idle_timeout)
    finally:
        if not args.keep_queue:
            _delete_queue(args.queue)


def _delete_queue(queue: str) -> None:
    try:
        with MessageBus() as bus:
            bus.delete_queue(queue)
        print(f"Deleted queue {queue} (--keep-queue keeps it)", file=sys.stderr)
    except BusError as exc:
        print(f"Could not delete queue {queue}: {exc}", file=sys.stderr)


def _consume(exchange: str, queue: str, max_messages: int, idle_timeout: float | None) -> None:
    handled = 0
    while True:
        try:
            with MessageBus() as bus:
                bus.declare_fanout_exchange(exchange, durable=True)
                bus.declare_queue(queue, durable=True)
                bus.bind_queue(queue, exchange)
                for message in bus.consume(queue, prefetch=1, inactivity_timeout=idle_timeout):
                    if message is None:
                        return
                    handle_message(message)
                    bus.ack(message.delivery_tag)
                    sys.stdout.flush()
                    handled += 1
                    if max_messages and handled >= max_messages:
                        return
        except BusConnectionError as exc:
            # Unacked messages are redelivered once we consume again.
            print(f"Connection to the message bus lost ({exc}); reconnecting", file=sys.stderr)
            time.sleep(RECONNECT_DELAY)

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.stdout.flush()
