"""ModelSwapperInterface: how the application layer talks to the model swapper (and how the
swapper's own parts talk to each other) over RabbitMQ.

Queues (names from model-swapper.conf [interface_bus]):

* ``<model_input_queue_prefix><modelId>`` — durable, one per model, request messages;
  created by defineModel/cloneModel, deleted after the model is deleted.
* ``results_queue`` — durable, result messages from every model.
* ``scheduler_notification_queue`` — durable here (the original's was not; see
  `initSchedulerNotification`), body = JSON string of a model id with new input.

A message of any of these queues that cannot be decoded goes to the queue's dead-letter queue
``<app>.dlq.<queue>`` (`nta_utils.dead_letter`) with the reason, and is acked; a result batch
whose processing keeps failing is put there by its consumer through
`ConsumedResultBatch.fail`. ``htmengine dlq --queue <queue>`` lists, shows and requeues them.

Usage by the application layer::

    with ModelSwapperInterface() as swapper:
        swapper.defineModel(modelID, args, commandID)
        swapper.submitRequests(modelID, [ModelInputRow(rowID=1, data=(ts, 3.5))])

    with ModelSwapperInterface() as swapper, swapper.consumeResults() as consumer:
        for batch in consumer:
            for result in batch.objects: ...
            batch.ack()
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.errors import InvalidMessageError, ModelNotFound
from htmengine.model_swapper.messages import (
    ModelCommand,
    RequestItem,
    ResultItem,
    packRequestMessage,
    packResultMessage,
    unpackRequestMessage,
    unpackResultMessage,
)
from htmengine.model_swapper.settings import SwapperSettings
from nta_utils.bounded_json import loads_bounded
from nta_utils.bus import Bus
from nta_utils.dead_letter import DeadLetterQueue, dead_letter_queue_name
from nta_utils.errors import BusError, QueueNotFoundError, UnroutableMessageError
from nta_utils.message_bus import BrokerChannelError, Message, MessageBus, OutgoingMessage

_log = logging.getLogger(__name__)

_MAX_NOTIFICATION_BYTES = 4096
# AMQP reply code of a refused conditional queue deletion (queue.delete if-empty)
PRECONDITION_FAILED = 406
# defineModel declares the input queue and publishes to it; a runner finishing a deleteModel
# may delete the (still empty) queue in between, once per deleteModel: declare and try again
DEFINE_ATTEMPTS = 3


class ConsumedRequestBatch(NamedTuple):
    """A request batch taken from a model's input queue; call `ack()` once it is durable."""

    batchID: str
    objects: tuple[RequestItem, ...]
    ack: Callable[..., None]
    deliveryTag: int
    connectionGeneration: int
    # ready batches the broker had left in the queue when this one was taken (None: unknown)
    remaining: int | None = None


class ConsumedResultBatch(NamedTuple):
    """A result batch taken from the results queue; call `ack()` once it is processed, or
    `fail(reason)` when processing it failed: True when that was the last allowed attempt and
    the batch is now in the dead-letter queue (and acked), False to try again."""

    modelID: str
    objects: tuple[ResultItem, ...]
    ack: Callable[..., None]
    fail: Callable[[str], bool] | None = None


class ConsumedNotification(NamedTuple):
    """A scheduler notification: `value` is the model id with new input."""

    value: str
    ack: Callable[..., None]
    deliveryTag: int


class _MessageConsumer:
    """Iterable of decoded messages from one queue; also a context manager (close())."""

    def __init__(self, source: Iterator[Any]) -> None:
        self._source: Iterator[Any] | None = source

    def __iter__(self) -> Iterator[Any]:
        if self._source is None:
            raise BusError("consumer is closed")
        return self._source

    def __enter__(self) -> _MessageConsumer:
        return self

    def __exit__(self, *excInfo: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop consuming; unacknowledged messages go back to the queue when the connection
        closes."""
        source, self._source = self._source, None
        close = getattr(source, "close", None)
        if close is not None:
            close()


class ModelSwapperInterface:
    """Submit model commands and input rows, consume results and scheduler notifications.

    One instance per thread (it owns a MessageBus connection unless one is given)."""

    def __init__(self, bus: Bus | None = None,
                 settings: SwapperSettings | None = None) -> None:
        settings = settings if settings is not None else SwapperSettings.from_config()
        self.settings = settings
        self._resultsQueueName = settings.results_queue
        self._modelInputQueueNamePrefix = settings.model_input_queue_prefix
        self._schedulerNotificationQueueName = settings.scheduler_notification_queue
        self._ownsBus = bus is None
        self._bus: Bus = bus if bus is not None else MessageBus()
        self._notificationQueueReady = False
        self._resultsQueueReady = False
        self._maxAttempts = settings.max_attempts
        self._deadLetters: dict[str, DeadLetterQueue] = {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}<results={self._resultsQueueName}, "
                f"inputPrefix={self._modelInputQueueNamePrefix}>")

    def __enter__(self) -> ModelSwapperInterface:
        return self

    def __exit__(self, *excInfo: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the bus connection (if this instance created it)."""
        if self._ownsBus:
            self._bus.close()

    def _deadLetterQueue(self, queue: str) -> DeadLetterQueue:
        dlq = self._deadLetters.get(queue)
        if dlq is None:
            dlq = DeadLetterQueue(self._bus, queue, self._maxAttempts, _log)
            if len(self._deadLetters) >= 1000:
                self._deadLetters.clear()
            self._deadLetters[queue] = dlq
        return dlq

    def _quarantine(self, queue: str, message: Message, reason: str) -> None:
        """Put an undecodable `message` of `queue` into its dead-letter queue, then ack it."""
        self._deadLetterQueue(queue).quarantine(message, reason)
        self._bus.ack(message.delivery_tag)

    def _failed(self, queue: str, message: Message, reason: str) -> bool:
        """One failed attempt at processing `message`; True if it was dead-lettered (acked)."""
        if self._deadLetterQueue(queue).failed(message, reason):
            self._bus.ack(message.delivery_tag)
            return True
        return False

    @property
    def bus(self) -> Bus:
        """The underlying bus (for the swapper's own services)."""
        return self._bus

    @property
    def resultsQueueName(self) -> str:
        """Name of the results queue."""
        return self._resultsQueueName

    @property
    def schedulerNotificationQueueName(self) -> str:
        """Name of the scheduler notification queue."""
        return self._schedulerNotificationQueueName

    def getModelInputQueueName(self, modelID: str) -> str:
        """The input queue of a model."""
        if not isinstance(modelID, str) or not modelID or "\n" in modelID:
            raise InvalidMessageError(f"modelID must be a non-empty string without newlines, "
                                      f"got {modelID!r}")
        return self._modelInputQueueNamePrefix + modelID

    def getModelIDFromInputQueueName(self, queueName: str) -> str:
        """Inverse of getModelInputQueueName."""
        if not queueName.startswith(self._modelInputQueueNamePrefix):
            raise InvalidMessageError(f"queue {queueName!r} is not a model input queue "
                                      f"(prefix {self._modelInputQueueNamePrefix!r})")
        return queueName[len(self._modelInputQueueNamePrefix):]

    # -- model commands --------------------------------------------------------------------

    def defineModel(self, modelID: str, args: dict[str, Any], commandID: str | int) -> str:
        """Create the model's input queue and send it "defineModel" with `args`
        ({modelConfig, inferenceArgs, inputRecordSchema}); the result arrives on the results
        queue with `commandID`. Returns the batch id."""
        if not isinstance(args, dict):
            raise InvalidMessageError(f"defineModel args must be a dict, got {args!r}")
        missing = [k for k in ("modelConfig", "inferenceArgs", "inputRecordSchema")
                   if k not in args]
        if missing:
            raise InvalidMessageError(f"defineModel args for model {modelID!r} lack {missing}")
        command = ModelCommand(commandID, "defineModel", args)
        attempt = 1
        while True:
            self._bus.declare_queue(self.getModelInputQueueName(modelID), durable=True)
            try:
                return self.submitRequests(modelID, (command,))
            except ModelNotFound:
                # the runner of a deleted incarnation removed the (empty) queue in between
                if attempt >= DEFINE_ATTEMPTS:
                    raise
                attempt += 1
                _log.info("defineModel: the input queue of model=%s was deleted meanwhile "
                          "(a deleteModel finished); declaring it again", modelID)

    def cloneModel(self, modelID: str, newModelID: str, commandID: str | int) -> str:
        """Create `newModelID`'s input queue and ask `modelID` to clone itself into it.
        ModelNotFound if the source model's input queue does not exist."""
        self._bus.declare_queue(self.getModelInputQueueName(newModelID), durable=True)
        return self.submitRequests(
            modelID, (ModelCommand(commandID, "cloneModel", {"modelID": newModelID}),))

    def deleteModel(self, modelID: str, commandID: str | int) -> None:
        """Purge the model's pending input and send it "deleteModel" (idempotent: a model
        whose queue is already gone is left alone)."""
        queueName = self.getModelInputQueueName(modelID)
        try:
            purged = self._bus.purge_queue(queueName)
        except QueueNotFoundError:
            _log.info("deleteModel: model=%s has no input queue (deleted already)", modelID)
            return
        _log.info("deleteModel: purged %d pending batch(es) of model=%s", purged, modelID)
        try:
            self.submitRequests(modelID, (ModelCommand(commandID, "deleteModel"),))
        except ModelNotFound:
            _log.info("deleteModel: model=%s input queue vanished (deleted concurrently)",
                      modelID)

    def cleanUpAfterModelDeletion(self, modelID: str) -> bool:
        """Delete the model's input queue and its dead-letter queue (by its runner, after
        removing the checkpoint), unless the input queue holds requests sent after the
        deleteModel command (the model was defined again): the broker refuses to delete a
        queue with ready messages, atomically. Returns False if the queue is kept."""
        queue = self.getModelInputQueueName(modelID)
        try:
            self._bus.delete_queue(queue, if_empty=True)
        except BrokerChannelError as exc:
            if exc.reply_code != PRECONDITION_FAILED:
                raise
            return False
        self._deadLetters.pop(queue, None)
        self._bus.delete_queue(dead_letter_queue_name(queue))
        return True

    # -- input -----------------------------------------------------------------------------

    def modelInputPending(self, modelID: str) -> bool:
        """True if the model's input queue exists and has ready messages."""
        try:
            return self._bus.message_count(self.getModelInputQueueName(modelID)) > 0
        except QueueNotFoundError:
            return False

    def getModelsWithInputPending(
            self, candidateModelIDs: Iterable[str] | None = None) -> tuple[str, ...]:
        """Ids of models with non-empty input queues among `candidateModelIDs`.

        AMQP cannot list queues, so the candidates default to the models in the checkpoint
        archive (every model whose defineModel has been processed)."""
        if candidateModelIDs is None:
            candidateModelIDs = ModelCheckpointMgr().getModelIDs()
        return tuple(m for m in candidateModelIDs if self.modelInputPending(m))

    def submitRequests(self, modelID: str, requests: Sequence[RequestItem]) -> str:
        """Publish a batch of ModelCommand/ModelInputRow items to the model (processed in
        order) and notify the scheduler; returns the new batch id.

        ModelNotFound if the model's input queue does not exist."""
        batchID = uuid.uuid4().hex
        return self.submitRequestBatch(modelID, batchID, requests)

    def submitRequestBatch(self, modelID: str, batchID: str,
                           requests: Sequence[RequestItem]) -> str:
        """submitRequests with a caller-chosen batch id (a resend with the same id is
        applied at most once by the runner)."""
        if not requests:
            raise InvalidMessageError(f"request batch for model {modelID!r} is empty")
        body = packRequestMessage(batchID, requests)
        queueName = self.getModelInputQueueName(modelID)
        try:
            self._bus.publish_to_queue(queueName, body, persistent=True)
        except (UnroutableMessageError, QueueNotFoundError) as exc:
            raise ModelNotFound(
                f"model {modelID!r} has no input queue {queueName!r} (deleted?)") from exc
        self._notifyScheduler(modelID)
        return batchID

    def submitRequestBatches(self, batches: Sequence[tuple[str, str, Sequence[RequestItem]]]
                             ) -> list[bool]:
        """submitRequestBatch for several (modelID, batchID, requests), with one wait for the
        broker for all the batches and one for the scheduler notifications (one per model,
        published once every batch is in its queue); returns, per batch, False if its model
        has no input queue (deleted?) and nothing was sent, else True."""
        messages: list[OutgoingMessage] = []
        for modelID, batchID, requests in batches:
            if not requests:
                raise InvalidMessageError(f"request batch for model {modelID!r} is empty")
            messages.append(OutgoingMessage("", self.getModelInputQueueName(modelID),
                                            packRequestMessage(batchID, requests)))
        returned = set(self._bus.publish_many(messages))
        sent = [index not in returned for index in range(len(batches))]
        notified = dict.fromkeys(modelID for (modelID, _, _), ok in zip(batches, sent,
                                                                        strict=True) if ok)
        if notified:
            if not self._notificationQueueReady:
                self.initSchedulerNotification()
            if self._bus.publish_many([
                    OutgoingMessage("", self._schedulerNotificationQueueName,
                                    json.dumps(modelID).encode()) for modelID in notified]):
                raise UnroutableMessageError(
                    f"scheduler notification queue {self._schedulerNotificationQueueName!r} "
                    f"is missing")
        return sent

    def notifyScheduler(self, modelID: str) -> None:
        """Tell the scheduler that `modelID` has input (submitRequests does this)."""
        self._notifyScheduler(modelID)

    def _notifyScheduler(self, modelID: str) -> None:
        body = json.dumps(modelID).encode()
        if not self._notificationQueueReady:
            self.initSchedulerNotification()
        self._bus.publish_to_queue(self._schedulerNotificationQueueName, body, persistent=True)

    def getRequestBatch(self, modelID: str) -> ConsumedRequestBatch | None:
        """Take the next request batch of a model (basic_get), or None if its queue is
        empty. An undecodable message goes to the dead-letter queue. ModelNotFound if no queue."""
        queueName = self.getModelInputQueueName(modelID)
        while True:
            try:
                message = self._bus.get(queueName)
            except QueueNotFoundError as exc:
                raise ModelNotFound(f"model {modelID!r} has no input queue") from exc
            if message is None:
                return None
            batch = self._decodeRequest(modelID, message)
            if batch is not None:
                return batch

    def _decodeRequest(self, modelID: str, message: Message) -> ConsumedRequestBatch | None:
        try:
            batch = unpackRequestMessage(message.body)
        except InvalidMessageError as error:
            self._quarantine(self.getModelInputQueueName(modelID), message,
                             f"undecodable request message: {error}")
            return None
        tag = message.delivery_tag
        bus = self._bus
        return ConsumedRequestBatch(
            batchID=batch.batchID, objects=batch.objects,
            ack=lambda multiple=False: bus.ack(tag, multiple=multiple),
            deliveryTag=tag, connectionGeneration=message.connection_generation,
            remaining=message.remaining)

    def consumeRequests(self, modelID: str, blocking: bool = True) -> _MessageConsumer:
        """Iterable of the model's request batches (ConsumedRequestBatch); with
        blocking=False it ends when the queue is empty."""
        queueName = self.getModelInputQueueName(modelID)

        def generate() -> Iterator[ConsumedRequestBatch]:
            if not blocking:
                while (batch := self.getRequestBatch(modelID)) is not None:
                    yield batch
                return
            try:
                for message in self._bus.consume(queueName):
                    if message is not None:
                        batch = self._decodeRequest(modelID, message)
                        if batch is not None:
                            yield batch
            except QueueNotFoundError as exc:
                raise ModelNotFound(f"model {modelID!r} has no input queue") from exc

        return _MessageConsumer(generate())

    # -- results ---------------------------------------------------------------------------

    def _initResultsMessageQueue(self) -> None:
        self._bus.declare_queue(self._resultsQueueName, durable=True)
        self._resultsQueueReady = True

    def submitResults(self, modelID: str, results: Sequence[ResultItem]) -> None:
        """Publish a batch of ModelCommandResult/ModelInferenceResult items of a model."""
        body = packResultMessage(modelID, results)
        if not self._resultsQueueReady:
            self._initResultsMessageQueue()
        try:
            self._bus.publish_to_queue(self._resultsQueueName, body, persistent=True)
        except (UnroutableMessageError, QueueNotFoundError):
            _log.info("Results queue %s was missing; declaring it and re-publishing",
                      self._resultsQueueName)
            self._initResultsMessageQueue()
            self._bus.publish_to_queue(self._resultsQueueName, body, persistent=True)

    def consumeResults(self, prefetch: int = 100,
                       inactivity_timeout: float | None = None) -> _MessageConsumer:
        """Iterable of ConsumedResultBatch (None after `inactivity_timeout` idle seconds,
        if given). Undecodable messages go to the dead-letter queue."""
        self._initResultsMessageQueue()

        def generate() -> Iterator[ConsumedResultBatch | None]:
            for message in self._bus.consume(self._resultsQueueName, prefetch=prefetch,
                                             inactivity_timeout=inactivity_timeout):
                if message is None:
                    yield None
                    continue
                try:
                    batch = unpackResultMessage(message.body)
                except InvalidMessageError as error:
                    self._quarantine(self._resultsQueueName, message,
                                     f"undecodable result message: {error}")
                    continue
                tag = message.delivery_tag
                yield ConsumedResultBatch(
                    batch.modelID, batch.objects,
                    lambda multiple=False, tag=tag: self._bus.ack(tag, multiple=multiple),
                    functools.partial(self._failed, self._resultsQueueName, message))

        return _MessageConsumer(generate())

    # -- scheduler notifications -----------------------------------------------------------

    def initSchedulerNotification(self) -> None:
        """Declare the scheduler notification queue.

        Deviation from the original (non-durable queue, transient notifications, queues
        listed through the management API): here the queue is durable and notifications
        persistent, and the scheduler acks a model's notification only once that model's
        input queue has been seen empty. Unacked notifications are the scheduler's durable
        record of models with pending work, so nothing depends on listing queues."""
        self._bus.declare_queue(self._schedulerNotificationQueueName, durable=True)
        self._notificationQueueReady = True

    def consumeModelSchedulerNotifications(
            self, prefetch: int = 0,
            inactivity_timeout: float | None = None) -> _MessageConsumer:
        """Iterable of ConsumedNotification (None after `inactivity_timeout` idle seconds,
        if given); prefetch 0 = unlimited unacked notifications."""
        self.initSchedulerNotification()

        def generate() -> Iterator[ConsumedNotification | None]:
            for message in self._bus.consume(self._schedulerNotificationQueueName,
                                             prefetch=prefetch,
                                             inactivity_timeout=inactivity_timeout):
                if message is None:
                    yield None
                    continue
                tag = message.delivery_tag
                try:
                    value = loads_bounded(message.body, max_bytes=_MAX_NOTIFICATION_BYTES,
                                          what="scheduler notification")
                    if not isinstance(value, str) or not value:
                        raise InvalidMessageError(f"not a model id: {value!r}")
                except ValueError as error:
                    self._quarantine(self._schedulerNotificationQueueName, message,
                                     f"undecodable scheduler notification: {error}")
                    continue
                yield ConsumedNotification(
                    value, lambda multiple=False, tag=tag: self._bus.ack(tag, multiple=multiple),
                    tag)

        return _MessageConsumer(generate())
