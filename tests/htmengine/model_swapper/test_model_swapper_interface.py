"""ModelSwapperInterface against the real RabbitMQ (session virtual host from engine_env)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import pytest

from htmengine.model_swapper.errors import InvalidMessageError, ModelNotFound
from htmengine.model_swapper.messages import (
    ModelCommand,
    ModelCommandResult,
    ModelInferenceResult,
    ModelInputRow,
)
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from nta_utils.dead_letter import HEADER_REASON, dead_letter_queue_name
from nta_utils.message_bus import MessageBus, QueueInfo

pytestmark = pytest.mark.integration

ARGS = {"modelConfig": {"k": 1}, "inferenceArgs": {},
        "inputRecordSchema": [["c0", "datetime", "T"], ["c1", "float", ""]]}


@pytest.fixture()
def swapper(engine_env):
    with ModelSwapperInterface() as swapper:
        swapper.initSchedulerNotification()
        swapper.bus.purge_queue(swapper.schedulerNotificationQueueName)
        yield swapper
        swapper.bus.purge_queue(swapper.schedulerNotificationQueueName)


def new_model_id() -> str:
    return uuid.uuid4().hex


def drain_notifications(swapper: ModelSwapperInterface) -> list[str]:
    values = []
    while (message := swapper.bus.get(swapper.schedulerNotificationQueueName)) is not None:
        values.append(json.loads(message.body))
        swapper.bus.ack(message.delivery_tag)
    return values


def test_queue_names_come_from_the_config(swapper, engine_env) -> None:
    assert swapper.resultsQueueName == f"{engine_env.prefix}.mswapper.results"
    assert swapper.getModelInputQueueName("abc") == f"{engine_env.prefix}.mswapper.model.input.abc"
    assert swapper.getModelIDFromInputQueueName(swapper.getModelInputQueueName("abc")) == "abc"


def test_define_then_submit_rows_delivers_batches_in_order_and_notifies(swapper) -> None:
    modelID = new_model_id()
    assert not swapper.modelInputPending(modelID)
    defineBatch = swapper.defineModel(modelID, ARGS, commandID="cmd-1")
    ts = datetime(2024, 5, 1, 12, 30, 0, 250)
    rowBatch = swapper.submitRequests(modelID, [ModelInputRow(1, (ts, 1.5)),
                                                ModelInputRow(2, (ts, None))])
    assert swapper.modelInputPending(modelID)
    assert swapper.getModelsWithInputPending([modelID, new_model_id()]) == (modelID,)
    assert drain_notifications(swapper) == [modelID, modelID]
    with swapper.consumeRequests(modelID, blocking=False) as consumer:
        batches = list(consumer)
    assert [b.batchID for b in batches] == [defineBatch, rowBatch]
    assert batches[0].objects == (ModelCommand("cmd-1", "defineModel", ARGS),)
    assert batches[1].objects == (ModelInputRow(1, [ts, 1.5]), ModelInputRow(2, [ts, None]))
    batches[1].ack(multiple=True)
    assert swapper.getRequestBatch(modelID) is None
    assert not swapper.modelInputPending(modelID)


def test_unacked_batches_are_redelivered_with_the_same_batch_id(swapper, engine_env) -> None:
    modelID = new_model_id()
    batchID = swapper.defineModel(modelID, ARGS, "c")
    with ModelSwapperInterface() as runnerSide:
        taken = runnerSide.getRequestBatch(modelID)
        assert taken is not None and taken.batchID == batchID
    # runnerSide closed without acking: the broker puts the batch back
    again = swapper.getRequestBatch(modelID)
    assert again is not None and again.batchID == batchID
    again.ack()


def test_submit_to_a_model_without_queue_raises_model_not_found(swapper) -> None:
    with pytest.raises(ModelNotFound):
        swapper.submitRequests(new_model_id(), [ModelInputRow(1, (datetime(2024, 1, 1), 1.0))])
    with pytest.raises(ModelNotFound):
        swapper.getRequestBatch(new_model_id())
    with pytest.raises(InvalidMessageError, match="empty"):
        swapper.submitRequests(new_model_id(), [])
    with pytest.raises(InvalidMessageError, match="inputRecordSchema"):
        swapper.defineModel(new_model_id(), {"modelConfig": {}, "inferenceArgs": {}}, "c")


def test_submit_request_batches_sends_in_order_then_notifies_once_per_model(swapper) -> None:
    first, second, gone = new_model_id(), new_model_id(), new_model_id()
    swapper.defineModel(first, ARGS, "c1")
    swapper.defineModel(second, ARGS, "c2")
    drain_notifications(swapper)
    ts = datetime(2024, 1, 1)
    sent = swapper.submitRequestBatches([
        (first, "f-1", [ModelInputRow(1, (ts, 1.0))]),
        (gone, "g-1", [ModelInputRow(1, (ts, 9.0))]),
        (second, "s-1", [ModelInputRow(1, (ts, 2.0))]),
        (first, "f-2", [ModelInputRow(2, (ts, 3.0)), ModelInputRow(3, (ts, 4.0))]),
    ])
    assert sent == [True, False, True, True]
    assert drain_notifications(swapper) == [first, second]
    assert swapper.getModelsWithInputPending([first, second, gone]) == (first, second)
    with swapper.consumeRequests(first, blocking=False) as consumer:
        batches = list(consumer)
    assert [b.batchID for b in batches][1:] == ["f-1", "f-2"]      # after the defineModel
    assert batches[2].objects == (ModelInputRow(2, [ts, 3.0]), ModelInputRow(3, [ts, 4.0]))
    batches[-1].ack(multiple=True)
    with pytest.raises(InvalidMessageError, match="empty"):
        swapper.submitRequestBatches([(first, "f-3", [])])
    assert swapper.submitRequestBatches([]) == []
    assert drain_notifications(swapper) == []


def test_delete_model_purges_input_and_is_idempotent(swapper) -> None:
    modelID = new_model_id()
    swapper.defineModel(modelID, ARGS, "c-def")
    swapper.submitRequests(modelID, [ModelInputRow(1, (datetime(2024, 1, 1), 1.0))])
    swapper.deleteModel(modelID, "c-del")
    batch = swapper.getRequestBatch(modelID)
    assert batch is not None and batch.objects == (ModelCommand("c-del", "deleteModel"),)
    batch.ack()
    assert swapper.getRequestBatch(modelID) is None
    swapper.cleanUpAfterModelDeletion(modelID)
    assert not swapper.bus.queue_exists(swapper.getModelInputQueueName(modelID))
    swapper.deleteModel(modelID, "c-del-again")   # no queue: nothing to do, no error
    swapper.cleanUpAfterModelDeletion(modelID)


def test_clean_up_keeps_a_queue_with_requests_sent_after_the_delete(swapper) -> None:
    modelID = new_model_id()
    queueName = swapper.getModelInputQueueName(modelID)
    swapper.defineModel(modelID, ARGS, "c-def")
    swapper.deleteModel(modelID, "c-del")
    swapper.defineModel(modelID, ARGS, "c-def2")      # monitored again meanwhile
    delete = swapper.getRequestBatch(modelID)
    assert delete is not None and delete.objects == (ModelCommand("c-del", "deleteModel"),)
    assert swapper.cleanUpAfterModelDeletion(modelID) is False
    delete.ack()
    batch = swapper.getRequestBatch(modelID)
    assert batch is not None and batch.objects[0].commandID == "c-def2"
    # only the taken (unacked) batch left: the queue goes
    assert swapper.cleanUpAfterModelDeletion(modelID) is True
    assert not swapper.bus.queue_exists(queueName)


class QueueDeletingBus(MessageBus):
    """A real bus that deletes a queue right after declaring it, once: the window in which a
    runner finishing a deleteModel removes the empty queue of a model being defined again."""

    def __init__(self) -> None:
        super().__init__()
        self.deletions = 0

    def declare_queue(self, name: str, *args: Any, **kwargs: Any) -> QueueInfo:
        info = super().declare_queue(name, *args, **kwargs)
        if self.deletions == 0:
            self.deletions += 1
            self.delete_queue(name)
        return info


def test_define_declares_again_when_the_queue_is_deleted_in_between(engine_env) -> None:
    modelID = new_model_id()
    with QueueDeletingBus() as bus, ModelSwapperInterface(bus) as swapper:
        swapper.defineModel(modelID, ARGS, "c-def")
        assert bus.deletions == 1
        batch = swapper.getRequestBatch(modelID)
        assert batch is not None and batch.objects[0].commandID == "c-def"
        batch.ack()
        swapper.cleanUpAfterModelDeletion(modelID)


def test_clone_creates_the_destination_queue_and_commands_the_source(swapper) -> None:
    source, dest = new_model_id(), new_model_id()
    swapper.defineModel(source, ARGS, "c")
    swapper.cloneModel(source, dest, "c-clone")
    assert swapper.bus.queue_exists(swapper.getModelInputQueueName(dest))
    with swapper.consumeRequests(source, blocking=False) as consumer:
        objects = [b.objects for b in consumer]
    assert objects[-1] == (ModelCommand("c-clone", "cloneModel", {"modelID": dest}),)
    with pytest.raises(ModelNotFound):
        swapper.cloneModel(new_model_id(), new_model_id(), "c")


def test_malformed_request_message_is_dead_lettered(swapper) -> None:
    modelID = new_model_id()
    swapper.defineModel(modelID, ARGS, "c")
    queue = swapper.getModelInputQueueName(modelID)
    swapper.bus.publish_to_queue(queue, b"garbage")
    first = swapper.getRequestBatch(modelID)
    assert first is not None and first.objects[0].method == "defineModel"
    assert swapper.getRequestBatch(modelID) is None       # garbage set aside, not redelivered
    first.ack()
    assert swapper.bus.message_count(queue) == 0
    dlq = dead_letter_queue_name(queue)
    letter = swapper.bus.get(dlq)
    assert letter.body == b"garbage"
    assert letter.headers[HEADER_REASON].startswith("undecodable request message: message "
                                                    "has no newline")
    swapper.bus.ack(letter.delivery_tag)
    swapper.cleanUpAfterModelDeletion(modelID)          # the dead-letter queue goes too
    assert not swapper.bus.queue_exists(dlq)


def test_results_round_trip(swapper) -> None:
    swapper.bus.declare_queue(swapper.resultsQueueName)
    swapper.bus.purge_queue(swapper.resultsQueueName)
    results = [ModelCommandResult("c", "defineModel", 0),
               ModelInferenceResult(7, 0, anomalyScore=0.125),
               ModelInferenceResult(8, 3, errorMessage="no such model")]
    swapper.submitResults("model-x", results)
    with swapper.consumeResults(inactivity_timeout=0.5) as consumer:
        for batch in consumer:
            assert batch is not None
            assert batch.modelID == "model-x" and batch.objects == tuple(results)
            batch.ack()
            break
    assert swapper.bus.message_count(swapper.resultsQueueName) == 0


def test_scheduler_notifications_are_consumed_as_model_ids(swapper) -> None:
    modelID = new_model_id()
    swapper.defineModel(modelID, ARGS, "c")
    seen = []
    with swapper.consumeModelSchedulerNotifications(inactivity_timeout=0.3) as consumer:
        for notification in consumer:
            if notification is None:
                break
            seen.append(notification.value)
            notification.ack()
    assert seen == [modelID]
