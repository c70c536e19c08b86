"""One behaviour suite for the message fabric, run on the embedded queue and on RabbitMQ."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from llama_agents import (
    CallableMessageConsumer,
    QueueMessage,
    UnroutableMessageError,
)
from llama_agents.errors import ConsumerNotFoundError
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE, Collector


async def _start(queue, consumer) -> asyncio.Task[None]:  # type: ignore[no-untyped-def]
    start = await queue.register_consumer(consumer)
    return asyncio.create_task(start())


async def test_messages_reach_only_consumers_of_their_type(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    alpha, beta = Collector(), Collector()
    await _start(queue, alpha.consumer("alpha"))
    await _start(queue, beta.consumer("beta"))

    for i in range(3):
        await queue.publish(QueueMessage(type="alpha", data={"i": i}))
    await queue.publish(QueueMessage(type="beta", data={"i": 99}))

    got_alpha = await alpha.wait_for(3)
    got_beta = await beta.wait_for(1)
    assert sorted(m.data["i"] for m in got_alpha) == [0, 1, 2]
    assert all(m.type == "alpha" for m in got_alpha)
    assert [m.data["i"] for m in got_beta] == [99]
    assert got_beta[0].stats.publish_time is not None
    assert got_beta[0].stats.process_start_time is not None


async def test_competing_consumers_share_work_without_duplicates(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory(prefetch=1)
    seen: dict[str, list[str]] = {"a": [], "b": []}
    both_busy = asyncio.Event()
    done = Collector()

    def handler_for(name: str):  # type: ignore[no-untyped-def]
        async def handle(message: QueueMessage) -> None:
            seen[name].append(message.id_)
            if seen["a"] and seen["b"]:
                both_busy.set()
            # Hold the first message until both consumers have one: proves they compete.
            async with asyncio.timeout(DEADLINE):
                await both_busy.wait()
            await done.handle(message)

        return handle

    await _start(queue, CallableMessageConsumer(handler=handler_for("a"), message_type="work"))
    await _start(queue, CallableMessageConsumer(handler=handler_for("b"), message_type="work"))

    published = [QueueMessage(type="work", data={"n": n}) for n in range(30)]
    for message in published:
        await queue.publish(message)

    await done.wait_for(30)
    handled = seen["a"] + seen["b"]
    assert sorted(handled) == sorted(m.id_ for m in published)
    assert len(set(handled)) == 30, "a message was delivered twice"
    assert seen["a"] and seen["b"], "both consumers must have done work"


async def test_message_is_acknowledged_once_handled(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    first = Collector()
    consumer = first.consumer("jobs")
    task = await _start(queue, consumer)
    await queue.publish(QueueMessage(type="jobs", data={"n": 1}))
    await first.wait_for(1)
    await queue.deregister_consumer(consumer)
    await asyncio.wait_for(task, DEADLINE)

    # A new consumer gets only what is published next: the handled message is gone.
    second = Collector()
    await _start(queue, second.consumer("jobs"))
    marker = QueueMessage(type="jobs", data={"marker": True})
    await queue.publish(marker)
    await second.wait_for(1)
    assert second.ids == [marker.id_]


async def test_failed_handler_gets_the_message_again(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(max_attempts=3)
    attempts: Counter[str] = Counter()
    done = Collector()

    async def flaky(message: QueueMessage) -> None:
        attempts[message.id_] += 1
        if attempts[message.id_] == 1:
            raise RuntimeError("transient failure")
        await done.handle(message)

    await _start(queue, CallableMessageConsumer(handler=flaky, message_type="flaky"))
    message = QueueMessage(type="flaky", data={"x": 1})
    await queue.publish(message)

    got = await done.wait_for(1)
    assert got[0].id_ == message.id_
    assert got[0].data == {"x": 1}
    assert attempts[message.id_] == 2
    assert await queue.fetch_dead_letters() == []


async def test_message_dead_lettered_after_attempt_limit(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(max_attempts=3)
    calls: list[str] = []

    async def always_fails(message: QueueMessage) -> None:
        calls.append(message.id_)
        raise ValueError(f"cannot handle {message.data['n']}")

    await _start(queue, CallableMessageConsumer(handler=always_fails, message_type="doomed"))
    message = QueueMessage(type="doomed", data={"n": 7})
    await queue.publish(message)

    [letter] = await queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
    assert calls == [message.id_] * 3
    assert letter.attempts == 3
    assert letter.routing_key == "doomed"
    assert "ValueError: cannot handle 7" in letter.reason
    assert letter.message().id_ == message.id_
    assert letter.message().data == {"n": 7}
    assert await queue.fetch_dead_letters() == [], "fetching removes the dead letters"


async def test_poison_message_dead_lettered_and_consumer_keeps_going(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    collector = Collector()
    await _start(queue, collector.consumer("orders"))

    await queue.publish_raw(b"\x00not json{", "orders")
    await queue.publish_raw(b'{"type": "orders", "data": "not a dict"}', "orders")
    valid = QueueMessage(type="orders", data={"ok": True})
    await queue.publish(valid)

    letters = await queue.fetch_dead_letters(wait_for=2, timeout=DEADLINE)
    got = await collector.wait_for(1)
    assert [m.id_ for m in got] == [valid.id_]
    by_body = {letter.body: letter for letter in letters}
    garbage = by_body["\x00not json{"]
    assert garbage.reason.startswith("undecodable")
    assert garbage.attempts == 0
    wrong_field = by_body['{"type": "orders", "data": "not a dict"}']
    assert "field 'data'" in wrong_field.reason


async def test_unroutable_publish_raises(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    await queue.declare_queue("known")
    with pytest.raises(UnroutableMessageError, match="nobody_listens"):
        await queue.publish(QueueMessage(type="nobody_listens"))


async def test_messages_published_before_consuming_starts_are_delivered(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    collector = Collector()
    start = await queue.register_consumer(collector.consumer("early"))
    published = [QueueMessage(type="early", data={"n": n}) for n in range(5)]
    for message in published:
        await queue.publish(message)

    consuming = asyncio.create_task(start())
    got = await collector.wait_for(5)
    assert sorted(m.id_ for m in got) == sorted(m.id_ for m in published)
    consuming.cancel()


async def test_deregistration_stops_delivery_and_loses_nothing(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    first = Collector()
    consumer = first.consumer("stream")
    task = await _start(queue, consumer)
    await queue.publish(QueueMessage(type="stream", data={"n": 0}))
    await first.wait_for(1)

    await queue.deregister_consumer(consumer)
    await asyncio.wait_for(task, DEADLINE)  # the start-consuming callable returns
    with pytest.raises(ConsumerNotFoundError):
        await queue.deregister_consumer(consumer)

    later = QueueMessage(type="stream", data={"n": 1})
    await queue.publish(later)  # the queue still exists: the message waits

    second = Collector()
    await _start(queue, second.consumer("stream"))
    await second.wait_for(1)
    assert second.ids == [later.id_]
    assert first.ids != [] and later.id_ not in first.ids


async def test_in_flight_message_finishes_before_deregistration_returns(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    entered = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def slow(message: QueueMessage) -> None:
        entered.set()
        await release.wait()
        finished.append(message.id_)

    consumer = CallableMessageConsumer(handler=slow, message_type="slow")
    await _start(queue, consumer)
    message = QueueMessage(type="slow")
    await queue.publish(message)
    async with asyncio.timeout(DEADLINE):
        await entered.wait()

    deregistering = asyncio.create_task(queue.deregister_consumer(consumer))
    await asyncio.sleep(0)
    assert not deregistering.done()
    release.set()
    await asyncio.wait_for(deregistering, DEADLINE)
    assert finished == [message.id_]


async def test_handles_up_to_prefetch_messages_at_once(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(prefetch=3)
    active = 0
    peak = 0
    three_active = asyncio.Event()
    done = Collector()

    async def handler(message: QueueMessage) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 3:
            three_active.set()
        async with asyncio.timeout(DEADLINE):
            await three_active.wait()
        active -= 1
        await done.handle(message)

    await _start(queue, CallableMessageConsumer(handler=handler, message_type="batch"))
    for n in range(9):
        await queue.publish(QueueMessage(type="batch", data={"n": n}))
    await done.wait_for(9)
    assert peak == 3


async def test_sync_handler_runs_off_the_event_loop(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    def blocking_handler(message: QueueMessage) -> None:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        loop.call_soon_threadsafe(received.put_nowait, (message.id_, on_loop))

    await _start(queue, CallableMessageConsumer(handler=blocking_handler, message_type="sync"))
    message = QueueMessage(type="sync")
    await queue.publish(message)
    message_id, on_loop = await asyncio.wait_for(received.get(), DEADLINE)
    assert message_id == message.id_
    assert on_loop is False


async def test_cleanup_removes_declared_queues(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    collector = Collector()
    await _start(queue, collector.consumer("temp"))
    await queue.declare_human_queue()
    # (Empty: RabbitMQ's cleanup never deletes a queue that holds messages; see
    # tests/fabric/test_rabbitmq_cleanup.py.)

    await queue.cleanup()

    with pytest.raises(UnroutableMessageError):
        await queue.publish(QueueMessage(type="temp"))
    with pytest.raises(UnroutableMessageError):
        await queue.publish(QueueMessage(type="human"))


async def test_human_queue_keeps_results_with_no_consumer(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    await queue.declare_human_queue()
    result = QueueMessage(type="human", data={"result": "42"})
    await queue.publish(result)

    reader = Collector()
    await _start(queue, reader.consumer("human"))
    got = await reader.wait_for(1)
    assert [m.id_ for m in got] == [result.id_]
    assert got[0].data == {"result": "42"}


async def test_invalid_message_type_is_refused(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    with pytest.raises(ValueError, match="not a valid message type"):
        await queue.declare_queue("has spaces")
    with pytest.raises(ValueError):
        CallableMessageConsumer(handler=print, message_type="wild.#")


async def test_invalid_payload_found_by_the_handler_is_not_retried(
    queue_factory: QueueFactory,
) -> None:
    from llama_agents import TaskDefinition

    queue = await queue_factory(max_attempts=5)
    calls: list[str] = []

    async def strict(message: QueueMessage) -> None:
        calls.append(message.id_)
        TaskDefinition.from_data(message.data)  # raises MessageDecodeError: no input

    await _start(queue, CallableMessageConsumer(handler=strict, message_type="strict"))
    message = QueueMessage(type="strict", data={"not_input": 1})
    await queue.publish(message)
    [letter] = await queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
    assert calls == [message.id_], "retrying cannot fix a bad payload"
    assert letter.reason.startswith("invalid payload") and "input" in letter.reason


async def test_transient_queue_lives_only_while_its_consumer_is_registered(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    replies = Collector()
    consumer = replies.consumer("caller.reply.abc123", transient=True)
    task = await _start(queue, consumer)
    message = QueueMessage(type="caller.reply.abc123", correlation_id="c1")
    await queue.publish(message)
    [got] = await replies.wait_for(1)
    assert got.correlation_id == "c1"
    await queue.deregister_consumer(consumer)
    await asyncio.wait_for(task, DEADLINE)
    with pytest.raises(UnroutableMessageError):
        await queue.publish(QueueMessage(type="caller.reply.abc123"))
