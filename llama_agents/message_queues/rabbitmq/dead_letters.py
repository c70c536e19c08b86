"""Reading `<exchange>.dead_letter`: the messages, and why each one is there.

Two writers fill that queue: our consumers (with `x-llama-*` headers saying why), and, as a
backstop, the broker itself when a quorum queue's delivery limit is reached (with its
`x-death` header). A record names the reason either way.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from llama_agents.errors import DeadLetterTimeoutError
from llama_agents.message_queues.delivery import (
    ATTEMPTS_HEADER,
    DEAD_AT_HEADER,
    ORIGIN_HEADER,
    ORIGIN_QUEUE_HEADER,
    REASON_HEADER,
    DeadLetter,
)

_BROKER_REASONS = {
    "delivery_limit": "the broker's delivery limit was reached (its consumers kept failing "
    "to settle it)",
    "rejected": "rejected without requeue",
    "expired": "its time to live expired",
    "maxlen": "its queue was over its length limit",
}


async def take(
    queue: AbstractQueue,
    *,
    limit: int | None,
    wait_for: int,
    timeout: float,
) -> list[AbstractIncomingMessage]:
    """Take messages from `queue`, unacknowledged: wait for `wait_for`, then what is there."""
    held: list[AbstractIncomingMessage] = []
    if wait_for > 0:
        await _consume_until(queue, held, wait_for, timeout)
    while limit is None or len(held) < limit:
        incoming = await queue.get(no_ack=False, fail=False)
        if incoming is None:
            break
        held.append(incoming)
    return held


async def _consume_until(
    queue: AbstractQueue, held: list[AbstractIncomingMessage], count: int, timeout: float
) -> None:
    """Take messages from `queue` (unacknowledged, into `held`) until `count` arrived."""
    enough = asyncio.Event()

    async def hold(incoming: AbstractIncomingMessage) -> None:
        held.append(incoming)
        if len(held) >= count:
            enough.set()

    tag = await queue.consume(hold, no_ack=False)
    try:
        async with asyncio.timeout(timeout):
            await enough.wait()
    except TimeoutError:
        raise DeadLetterTimeoutError(
            f"fewer than {count} dead letters after {timeout}s (got {len(held)})"
        ) from None
    finally:
        await queue.cancel(tag)


def record(incoming: AbstractIncomingMessage, queue: str) -> DeadLetter:
    """The `DeadLetter` for a message read from the dead-letter queue `queue`."""
    headers = {k: _plain(v) for k, v in (incoming.headers or {}).items()}
    death = _first_death(headers)
    dead_at = headers.get(DEAD_AT_HEADER) or death.get("time")
    return DeadLetter(
        routing_key=str(headers.get(ORIGIN_HEADER) or _first(death.get("routing-keys")) or ""),
        queue=str(headers.get(ORIGIN_QUEUE_HEADER) or death.get("queue") or queue),
        reason=str(headers.get(REASON_HEADER) or _broker_reason(death) or "unknown"),
        attempts=_as_int(headers.get(ATTEMPTS_HEADER) or headers.get("x-delivery-count")),
        body=incoming.body.decode(errors="replace"),
        headers=headers,
        dead_lettered_at=datetime.fromisoformat(dead_at) if isinstance(dead_at, str) else None,
    )


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def _broker_reason(death: dict[str, Any]) -> str | None:
    reason = death.get("reason")
    if not reason:
        return None
    said = _BROKER_REASONS.get(str(reason), str(reason))
    return f"dead-lettered by RabbitMQ from {death.get('queue', '?')}: {said} ({reason})"


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def _as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def persistent_copy(incoming: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of a received message with new headers."""
    return aio_pika.Message(
        body=incoming.body,
        headers=headers,
        content_type=incoming.content_type,
        content_encoding=incoming.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        correlation_id=incoming.correlation_id,
        reply_to=incoming.reply_to,
        message_id=incoming.message_id,
        timestamp=incoming.timestamp,
        type=incoming.type,
        app_id=incoming.app_id,
    )
