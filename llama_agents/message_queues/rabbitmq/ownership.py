"""What this process created on the broker, and removing only that.

Re-declaring a queue that already exists is how RabbitMQ clients say "make sure it is
there"; it does not make the queue ours. A queue object therefore checks (passively) whether
a queue existed before it declared it, and its cleanup deletes only the queues it created,
and only if they are empty and nobody consumes from them. A live system sharing the exchange
keeps its queues and their messages. (Quorum queues do not take `queue.delete`'s
if-empty/if-unused flags, so for them the check is a passive declare right before.)

These calls use short-lived plain channels: a passive declare of a missing queue, or a
conditional delete that does not apply, closes its channel, which a robust channel would
try to restore.
"""

from __future__ import annotations

import contextlib
import logging

from aio_pika.abc import AbstractRobustConnection
from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from llama_agents.errors import BrokerUnavailableError

logger = logging.getLogger("llama_agents.rabbitmq")


async def _plain_channel(connection: AbstractRobustConnection) -> AbstractChannel:
    transport = connection.transport
    if transport is None or transport.connection.is_closed:
        raise BrokerUnavailableError("the connection to RabbitMQ is down")
    return await transport.connection.channel(publisher_confirms=False)


async def queue_exists(connection: AbstractRobustConnection, name: str) -> bool:
    """True when a queue named `name` is already declared on the broker."""
    channel = await _plain_channel(connection)
    try:
        await channel.queue_declare(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return True


async def _counts(connection: AbstractRobustConnection, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of the queue named `name`; (0, 0) when there is none."""
    channel = await _plain_channel(connection)
    try:
        declared = await channel.queue_declare(name, passive=True)
    except ChannelNotFoundEntity:
        return 0, 0
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return int(declared.message_count or 0), int(declared.consumer_count or 0)


async def consumer_count(connection: AbstractRobustConnection, name: str) -> int:
    """How many consumers the queue named `name` has (0 when there is no such queue)."""
    return (await _counts(connection, name))[1]


async def delete_queue_if_idle(
    connection: AbstractRobustConnection, name: str, *, atomic: bool
) -> bool:
    """Delete `name` only if it is empty and has no consumer; True if it is gone.

    `atomic` (classic queues) lets the broker check both in the delete itself. Quorum queues
    refuse those flags (with a connection error), so for them the counts are read first with
    a passive declare and the delete follows at once.
    """
    channel = await _plain_channel(connection)
    try:
        if atomic:
            await channel.queue_delete(name, if_unused=True, if_empty=True)
            return True
        declared = await channel.queue_declare(name, passive=True)
        if declared.message_count or declared.consumer_count:
            logger.info(
                "left queue %r in place: it holds %s messages and has %s consumers",
                name,
                declared.message_count,
                declared.consumer_count,
            )
            return False
        await channel.queue_delete(name)
    except ChannelNotFoundEntity:
        return True
    except ChannelPreconditionFailed:
        logger.info("left queue %r in place: it holds messages or has consumers", name)
        return False
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return True


async def delete_exchange_if_unused(connection: AbstractRobustConnection, name: str) -> bool:
    """Delete exchange `name` only if no queue is bound to it; True if it is gone."""
    channel = await _plain_channel(connection)
    try:
        await channel.exchange_delete(name, if_unused=True)
    except ChannelNotFoundEntity:
        return True
    except ChannelPreconditionFailed:
        logger.info("left exchange %r in place: queues are still bound to it", name)
        return False
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return True


async def message_count(connection: AbstractRobustConnection, name: str) -> int:
    """How many messages wait, ready, in the queue named `name` (0 when there is none)."""
    return (await _counts(connection, name))[0]
