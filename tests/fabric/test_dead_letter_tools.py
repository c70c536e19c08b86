"""Replaying and purging dead letters, on the embedded queue and on RabbitMQ alike."""

from __future__ import annotations

import asyncio

from llama_agents import CallableMessageConsumer, QueueMessage
from llama_agents.message_queues.delivery import ATTEMPTS_HEADER, REASON_HEADER
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE, Collector


class Sometimes:
    """A handler that fails `failures` more times, then records what it got."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.done = Collector()

    async def handle(self, message: QueueMessage) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the database is down")
        await self.done.handle(message)


async def _start(queue, consumer) -> asyncio.Task[None]:  # type: ignore[no-untyped-def]
    start = await queue.register_consumer(consumer)
    return asyncio.create_task(start())


async def test_replay_resets_the_attempt_count_and_redelivers(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(max_attempts=2)
    handler = Sometimes(failures=2)
    await _start(queue, CallableMessageConsumer(handler=handler.handle, message_type="orders"))
    message = QueueMessage(type="orders", data={"n": 1})
    await queue.publish(message)
    [letter] = await queue.fetch_dead_letters(remove=False, wait_for=1, timeout=DEADLINE)
    assert letter.attempts == 2 and "database is down" in letter.reason
    assert letter.headers.get(REASON_HEADER) or letter.reason  # the reason travels with it

    # The cause is "fixed" but for one more failure: had the count not been reset (2 of 2),
    # that failure would dead-letter it again.
    handler.failures = 1
    outcome = await queue.replay_dead_letters([letter.id])
    assert [d.id for d in outcome.replayed] == [letter.id] and outcome.failed == []
    [done] = await handler.done.wait_for(1)
    assert done.id_ == message.id_
    assert handler.calls == 4
    assert await queue.fetch_dead_letters(remove=False) == []
    assert await queue.dead_letter_count() == 0


async def test_listing_never_loses_a_letter_and_ids_are_stable(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    collector = Collector()
    await _start(queue, collector.consumer("orders"))
    for body in (b"not json 1", b"not json 2", b"not json 3"):
        await queue.publish_raw(body, "orders")
    first = await queue.fetch_dead_letters(remove=False, wait_for=3, timeout=DEADLINE)
    again = await queue.fetch_dead_letters(remove=False)
    assert sorted(d.id for d in first) == sorted(d.id for d in again)
    assert len({d.id for d in first}) == 3
    assert len(await queue.fetch_dead_letters(remove=False)) == 3
    assert all(ATTEMPTS_HEADER not in d.headers or d.attempts == 0 for d in first)


async def test_replay_by_reason_takes_only_those(queue_factory: QueueFactory) -> None:
    queue = await queue_factory(max_attempts=1)
    handler = Sometimes(failures=1)
    await _start(queue, CallableMessageConsumer(handler=handler.handle, message_type="orders"))
    await queue.publish_raw(b"poison", "orders")
    await queue.publish(QueueMessage(type="orders", data={"n": 2}))
    letters = await queue.fetch_dead_letters(remove=False, wait_for=2, timeout=DEADLINE)
    assert len(letters) == 2

    outcome = await queue.replay_dead_letters(reason="DATABASE")  # case does not matter
    assert len(outcome.replayed) == 1 and "database" in outcome.replayed[0].reason
    [done] = await handler.done.wait_for(1)
    assert done.data == {"n": 2}
    [left] = await queue.fetch_dead_letters(remove=False)
    assert left.body == "poison"


async def test_a_replayed_poison_message_comes_back_dead(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    collector = Collector()
    await _start(queue, collector.consumer("orders"))
    await queue.publish_raw(b"poison", "orders")
    [letter] = await queue.fetch_dead_letters(remove=False, wait_for=1, timeout=DEADLINE)
    outcome = await queue.replay_dead_letters(None)
    assert [d.id for d in outcome.replayed] == [letter.id]
    [again] = await queue.fetch_dead_letters(remove=False, wait_for=1, timeout=DEADLINE)
    assert again.body == "poison" and again.reason.startswith("undecodable")
    assert again.id != letter.id, "a new death, a new id"


async def test_purge_empties_the_dead_letter_queue(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    collector = Collector()
    await _start(queue, collector.consumer("orders"))
    for body in (b"x1", b"x2"):
        await queue.publish_raw(body, "orders")
    await queue.fetch_dead_letters(remove=False, wait_for=2, timeout=DEADLINE)
    assert await queue.purge_dead_letters() == 2
    assert await queue.fetch_dead_letters(remove=False) == []
    assert await queue.dead_letter_count() == 0
    # Consuming goes on as before.
    valid = QueueMessage(type="orders")
    await queue.publish(valid)
    assert (await collector.wait_for(1))[0].id_ == valid.id_
