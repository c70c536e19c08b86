"""The operator's tools on `<exchange>.dead_letter`: count, replay, purge.

The dead-letter queue is an ordinary (quorum or classic) queue, so reading it means taking
its messages. Every tool here takes them unacknowledged on a channel of its own and settles
each one only once its fate is sure: a letter is acknowledged (removed) only after its copy
was confirmed by the broker on its original routing key, and every other letter is handed
back (nack with requeue). A crash midway closes the channel, and the broker requeues what it
held: nothing is lost, at worst a letter is replayed twice (at least once).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from typing import TYPE_CHECKING

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from llama_agents.errors import LlamaAgentsError
from llama_agents.message_queues.rabbitmq import dead_letters, ownership
from llama_agents.message_queues.rabbitmq.topology import dead_letter_queue_name
from llama_agents.message_queues.replay import (
    ReplayFailure,
    ReplayOutcome,
    replay_headers,
    selects,
)

if TYPE_CHECKING:
    from llama_agents.message_queues.rabbitmq.queue import RabbitMQMessageQueue


async def count(queue: RabbitMQMessageQueue) -> int:
    """Dead letters ready in the queue (one being read by another tool right now is not)."""
    await queue.connect()
    assert queue._connection is not None
    return await ownership.message_count(
        queue._connection, dead_letter_queue_name(queue.exchange_name)
    )


async def replay(
    queue: RabbitMQMessageQueue, ids: Collection[str] | None, reason: str | None
) -> ReplayOutcome:
    """Publish the selected letters back to their routing keys, then remove them."""
    outcome = ReplayOutcome()
    channel = await queue._open_channel()
    try:
        dlq = await queue._declare_dead_letter_queue(channel)
        held = await dead_letters.take(dlq, limit=None, wait_for=0, timeout=0)
        for incoming in held:
            letter = dead_letters.record(incoming, dlq.name)
            if not selects(letter, ids, reason):
                await incoming.nack(requeue=True)
                continue
            try:
                await queue._publish_amqp(_fresh(incoming), letter.routing_key)
            except LlamaAgentsError as exc:
                await incoming.nack(requeue=True)
                outcome.failed.append(
                    ReplayFailure(id=letter.id, routing_key=letter.routing_key, error=str(exc))
                )
                continue
            await incoming.ack()
            outcome.replayed.append(letter)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return outcome


async def purge(queue: RabbitMQMessageQueue) -> int:
    """Delete every dead letter ready in the queue; return how many."""
    channel = await queue._open_channel()
    try:
        dlq = await queue._declare_dead_letter_queue(channel)
        purged = await dlq.purge()
        return int(purged.message_count or 0)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


def _fresh(incoming: AbstractIncomingMessage) -> aio_pika.Message:
    """The letter as a new persistent message: same body and properties, no death."""
    return dead_letters.persistent_copy(incoming, replay_headers(dict(incoming.headers or {})))
