"""The operator's replay of `<exchange>.dead_letter` (the queue counts and purges it itself).

The dead-letter queue is an ordinary (quorum or classic) queue, so reading it means taking
its messages. Every tool here takes them unacknowledged on a channel of its own and settles
each one only once its fate is sure: a letter is acknowledged (removed) only after its copy
was confirmed by the broker on its original routing key, and every other letter is handed
back (nack with requeue). A crash midway closes the channel, and the broker requeues what it
held: nothing is lost, at worst a letter is replayed twice (at least once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from llama_agents.errors import LlamaAgentsError
from llama_agents.message_queues.rabbitmq import dead_letters
from llama_agents.message_queues.replay import (
    ReplayFailure,
    ReplayOutcome,
    replay_headers,
    selects,
)

#: Publishes a message to a routing key and returns once the broker confirmed it.
Publish = Callable[[aio_pika.Message, str], Awaitable[None]]


async def replay(
    dlq: AbstractQueue, publish: Publish, ids: Collection[str] | None, reason: str | None
) -> ReplayOutcome:
    """Publish the selected letters of `dlq` (taken on a channel of the caller's, which it
    closes after) back to their routing keys, then remove them."""
    outcome = ReplayOutcome()
    held = await dead_letters.take(dlq, limit=None, wait_for=0, timeout=0)
    for incoming in held:
        letter = dead_letters.record(incoming, dlq.name)
        if not selects(letter, ids, reason):
            await incoming.nack(requeue=True)
            continue
        try:
            await publish(_fresh(incoming), letter.routing_key)
        except LlamaAgentsError as exc:
            await incoming.nack(requeue=True)
            outcome.failed.append(
                ReplayFailure(id=letter.id, routing_key=letter.routing_key, error=str(exc))
            )
            continue
        await incoming.ack()
        outcome.replayed.append(letter)
    return outcome


def _fresh(incoming: AbstractIncomingMessage) -> aio_pika.Message:
    """The letter as a new persistent message: same body and properties, no death."""
    return dead_letters.persistent_copy(incoming, replay_headers(dict(incoming.headers or {})))
