"""What happens to one delivered message: the rules both queues share.

A transport hands the raw body and how many times it already failed; this module decodes
it, runs the consumer and says what to do next: acknowledge, retry, or dead-letter (with
the reason). Keeping the rules here means the embedded queue and RabbitMQ cannot drift.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, computed_field

from llama_agents import tracing
from llama_agents.errors import ConfigurationError, MessageDecodeError, NonRetryableMessageError
from llama_agents.logs.context import message_ids, set_log_context
from llama_agents.message_consumers.base import BaseMessageQueueConsumer
from llama_agents.messages import QueueMessage
from llama_agents.messages.envelope import utc_now

logger = logging.getLogger("llama_agents.delivery")

#: Header holding how many times consumers already failed on a message.
ATTEMPTS_HEADER = "x-llama-attempts"
#: Headers set on a dead-lettered message.
REASON_HEADER = "x-llama-dead-letter-reason"
ORIGIN_HEADER = "x-llama-original-routing-key"
ORIGIN_QUEUE_HEADER = "x-llama-original-queue"
DEAD_AT_HEADER = "x-llama-dead-lettered-at"

#: The routing key (message type) of the dead-letter queue.
DEAD_LETTER_TYPE = "dead_letter"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How a queue hands out messages.

    `prefetch`: messages one consumer handles at once (unless the consumer sets its own).
    `max_attempts`: how many times a failing handler is tried before the message is
    dead-lettered (1 means no retry).
    `drain_timeout`: seconds a stopping consumer waits for the messages it is handling;
    handlers still running then are cancelled and their messages handed back unacknowledged.
    """

    prefetch: int = 10
    max_attempts: int = 3
    drain_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.prefetch < 1:
            raise ConfigurationError(f"prefetch must be at least 1, got {self.prefetch}")
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.drain_timeout <= 0:
            raise ConfigurationError(f"drain_timeout must be positive, got {self.drain_timeout}")

    def prefetch_for(self, consumer: BaseMessageQueueConsumer) -> int:
        """The consumer's own prefetch if it set one, else the queue's."""
        return consumer.prefetch or self.prefetch


class Verdict(enum.Enum):
    """What the transport should do with a delivered message."""

    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Outcome:
    """A verdict, with the failure count after this delivery and the reason if it failed."""

    verdict: Verdict
    attempts: int
    reason: str | None = None


class DeadLetter(BaseModel):
    """A message that was taken off its queue for good, and why.

    `body` is the raw body as received (UTF-8, undecodable bytes replaced), so even a message
    that was never valid JSON can be inspected.
    """

    routing_key: str
    queue: str
    reason: str
    attempts: int
    body: str
    headers: dict[str, Any] = Field(default_factory=dict)
    dead_lettered_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """A stable id for this dead letter: a digest of what it is, so every reader of the
        queue (and every process) names it the same without the broker storing an id."""
        stamp = self.dead_lettered_at.isoformat() if self.dead_lettered_at else ""
        digest = hashlib.sha256()
        for part in (self.routing_key, self.queue, self.reason, stamp, self.body):
            digest.update(part.encode(errors="replace"))
            digest.update(b"\0")
        return digest.hexdigest()[:16]

    def message(self) -> QueueMessage:
        """The original message, decoded (raises `MessageDecodeError` for a poison message)."""
        return QueueMessage.decode(self.body.encode())


async def deliver(
    consumer: BaseMessageQueueConsumer,
    body: bytes,
    *,
    attempts: int,
    policy: DeliveryPolicy,
    redelivered: bool = False,
    headers: Mapping[str, Any] | None = None,
    system: str = "llama_agents",
    destination: str | None = None,
) -> Outcome:
    """Decode `body` and run `consumer` on it; never raises for a consumer's failure.

    `attempts` is how many times the message already failed; `redelivered` says the broker
    handed it out before (its consumer died holding it). A retry of ours is not a redelivery:
    its handler ran and raised, and the retry policy asks for it to run again. An
    undecodable message, and one whose handler raised `NonRetryableMessageError`, is
    dead-lettered at once: retrying it cannot help. A message dead-lettered here is reported
    to the consumer's `on_dead_letter`, so whoever waits for its outcome learns why it will
    never come. The transport's `headers`, its `system` and the queue (`destination`) are
    for the delivery's trace span: it continues the trace context the publisher put there.
    """
    try:
        message = QueueMessage.decode(body)
    except MessageDecodeError as exc:
        logger.warning("dead-lettering undecodable message for %r: %s", consumer, exc)
        return Outcome(Verdict.DEAD_LETTER, attempts, f"undecodable: {exc}")

    message.stats.redelivered = redelivered
    # Every line logged while this message is handled names its task, step and consumer.
    with (
        set_log_context(service=consumer.message_type, **message_ids(message.data)),
        tracing.consuming(
            message, consumer.message_type, system=system, destination=destination, headers=headers
        ) as settled,
    ):
        outcome = await _run(consumer, message, attempts=attempts, policy=policy)
        settled(outcome.verdict.value, outcome.reason)
        if outcome.verdict is Verdict.DEAD_LETTER:
            await _tell(consumer, message, outcome.reason or "dead-lettered")
    return outcome


async def notify_dead_letter(consumer: BaseMessageQueueConsumer, body: bytes, reason: str) -> None:
    """Tell `consumer` that a message it was given is dead-lettered (if it can be decoded)."""
    try:
        message = QueueMessage.decode(body)
    except MessageDecodeError:
        return
    await _tell(consumer, message, reason)


async def _tell(consumer: BaseMessageQueueConsumer, message: QueueMessage, reason: str) -> None:
    try:
        await consumer.on_dead_letter(message, reason)
    except Exception:
        logger.exception("the dead-letter hook of %r failed on message %s", consumer, message.id_)


async def _run(
    consumer: BaseMessageQueueConsumer,
    message: QueueMessage,
    *,
    attempts: int,
    policy: DeliveryPolicy,
) -> Outcome:
    message.stats.process_start_time = utc_now()
    try:
        await consumer.process_message(message)
    except NonRetryableMessageError as exc:
        # The handler says it can never handle this message: retrying cannot help.
        reason = rejection_reason(exc)
        logger.warning("dead-lettering message %s at once: %s", message.id_, reason)
        return Outcome(Verdict.DEAD_LETTER, attempts + 1, reason)
    except Exception as exc:
        failures = attempts + 1
        reason = f"{type(exc).__name__}: {exc}"
        if failures >= policy.max_attempts:
            logger.warning(
                "dead-lettering message %s after %d failed attempts: %s",
                message.id_,
                failures,
                reason,
            )
            return Outcome(Verdict.DEAD_LETTER, failures, f"handler failed: {reason}")
        logger.info(
            "handler failed on message %s (attempt %d of %d), retrying: %s",
            message.id_,
            failures,
            policy.max_attempts,
            reason,
        )
        return Outcome(Verdict.RETRY, failures, reason)
    finally:
        message.stats.process_end_time = utc_now()
    return Outcome(Verdict.ACK, attempts)


def rejection_reason(exc: NonRetryableMessageError) -> str:
    """The dead-letter reason for a message its handler refused: what was wrong, and why."""
    if isinstance(exc, MessageDecodeError):
        return f"invalid payload: {exc}"
    return f"not retryable ({type(exc).__name__}): {exc}"


async def drain(tasks: set[asyncio.Task[Any]], timeout: float) -> None:
    """Wait for in-flight handlers; cancel the ones still running after `timeout` seconds."""
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=timeout)
    for task in pending:
        logger.warning("handler still running after %.1fs drain; cancelling it", timeout)
        task.cancel()
    if pending:
        await asyncio.wait(pending)


def read_attempts(headers: dict[str, Any] | None) -> int:
    """The failure count carried in a message's headers (0 when absent or malformed)."""
    if not headers:
        return 0
    value = headers.get(ATTEMPTS_HEADER, 0)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0
