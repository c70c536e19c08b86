"""The interface every message queue implements, as the README uses it."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Collection
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from llama_agents import tracing
from llama_agents.errors import ConfigurationError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_queues.delivery import DeadLetter
from llama_agents.message_queues.replay import ReplayOutcome
from llama_agents.messages import QueueMessage, validate_routing_key
from llama_agents.messages.envelope import CONTROL_PLANE_MESSAGE_TYPE as CONTROL_PLANE_MESSAGE_TYPE
from llama_agents.messages.envelope import HUMAN_MESSAGE_TYPE as HUMAN_MESSAGE_TYPE
from llama_agents.messages.envelope import utc_now

if TYPE_CHECKING:
    from llama_agents.metrics.fabric import FabricMetrics


class BaseMessageQueue(ABC):
    """A message fabric: publish by type, consume by type, at least once.

    Every message type has one queue; consumers of a type compete for its messages. A
    consumer acknowledges a message only after its handler returned; a handler that keeps
    failing is retried `max_attempts` times and then dead-lettered; an undecodable message is
    dead-lettered at once.
    """

    #: True when queued messages outlive this process (a broker keeps them on disk).
    durable: bool = True
    #: `messaging.system` on this queue's trace spans.
    messaging_system: str = "llama_agents"
    _metrics: FabricMetrics | None = None

    @property
    def metrics(self) -> FabricMetrics:
        """This queue object's fabric metrics (publish confirms, redeliveries, dead letters),
        made on first use: the HTTP APIs of its owners serve them."""
        if self._metrics is None:
            from llama_agents.metrics.fabric import FabricMetrics  # the server side only

            self._metrics = FabricMetrics()
        return self._metrics

    @property
    def is_connected(self) -> bool:
        """True while the queue can take messages (a broker queue: its connection is up)."""
        return True

    @property
    def is_healthy(self) -> bool:
        """True while messages flow normally: connected, and no consumer is stuck handing
        back messages it could not settle (a `/health` route answers 503 otherwise)."""
        return self.is_connected

    def health(self) -> dict[str, Any]:
        """What `/health` reports: `healthy` and `broker_connected`, plus transport details."""
        return {"healthy": self.is_healthy, "broker_connected": self.is_connected}

    async def queue_exists(self, message_type: str) -> bool:
        """Whether messages of `message_type` have a queue to go to (publishing would work)."""
        return True

    async def consumer_count(self, message_type: str) -> int | None:
        """How many consumers take `message_type`'s messages now (None: cannot tell)."""
        return None

    async def publish(self, message: QueueMessage, **kwargs: Any) -> None:
        """Publish `message` to the consumers of `message.type`.

        Returns once the queue holds the message; raises `UnroutableMessageError` when no
        queue exists for that type.
        """
        message.stats.publish_time = utc_now()
        with tracing.publishing(
            message, self.messaging_system, getattr(self, "exchange_name", None)
        ):
            await self._publish(message, **kwargs)

    @abstractmethod
    async def _publish(self, message: QueueMessage, **kwargs: Any) -> None:
        """Transport-specific publish."""

    @abstractmethod
    async def publish_raw(
        self, body: bytes, routing_key: str, headers: dict[str, Any] | None = None
    ) -> None:
        """Publish bytes as they are, for producers that do not use `QueueMessage`.

        The body is decoded on delivery; a body that is not a valid message is dead-lettered.
        """

    @abstractmethod
    async def register_consumer(
        self, consumer: BaseMessageQueueConsumer, **kwargs: Any
    ) -> StartConsumingCallable:
        """Declare the consumer's queue now, and return a callable that starts consuming.

        Messages published between the two calls are kept and delivered. Awaiting the
        callable consumes until the consumer is deregistered or the queue closed.
        """

    @abstractmethod
    async def deregister_consumer(self, consumer: BaseMessageQueueConsumer) -> None:
        """Stop delivering to `consumer`, after the messages it is handling are finished."""

    @abstractmethod
    async def declare_queue(self, message_type: str) -> None:
        """Make sure the queue for `message_type` exists, so messages wait there for consumers."""

    async def declare_human_queue(self, message_type: str = HUMAN_MESSAGE_TYPE) -> None:
        """Declare the queue final results go to, so results are kept with no consumer online."""
        await self.declare_queue(validate_routing_key(message_type))

    @abstractmethod
    async def fetch_dead_letters(
        self,
        limit: int | None = None,
        *,
        remove: bool = True,
        wait_for: int = 0,
        timeout: float = 10.0,
    ) -> list[DeadLetter]:
        """Messages that were dead-lettered, oldest first (removed from the queue by default).

        With `wait_for=n`, first wait until at least `n` are there (`DeadLetterTimeoutError`,
        a `TimeoutError`, after `timeout` seconds): the wait is driven by the dead letters
        arriving, not by polling.
        """

    async def dead_letter_count(self) -> int | None:
        """How many dead letters wait now (None: this queue cannot tell)."""
        return None

    async def replay_dead_letters(
        self, ids: Collection[str] | None = None, *, reason: str | None = None
    ) -> ReplayOutcome:
        """Put dead letters back on their original routing key, their attempt count reset.

        `ids` (None: every one) and `reason` (a substring of the dead-letter reason) select
        them. A letter leaves the dead-letter queue only once its copy was taken (at least
        once); one that cannot be published stays, and is listed in `failed`.
        """
        raise ConfigurationError(f"{type(self).__name__} cannot replay dead letters")

    async def purge_dead_letters(self) -> int:
        """Delete every dead letter; return how many were deleted."""
        raise ConfigurationError(f"{type(self).__name__} cannot purge dead letters")

    @abstractmethod
    async def launch_local(self) -> asyncio.Task[None]:
        """Start the queue inside this process; the task ends when the queue is closed."""

    @abstractmethod
    async def launch_server(self) -> None:
        """Run the queue as a long-lived service until it is closed or cancelled."""

    @abstractmethod
    async def cleanup(self) -> None:
        """Remove what this queue object declared (queues, and its exchange if unused)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop every consumer (letting in-flight messages finish) and release connections."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
