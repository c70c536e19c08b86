"""What a message queue delivers to: a consumer of one message type."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any

from llama_agents.errors import ConfigurationError
from llama_agents.messages import QueueMessage, validate_routing_key

#: Returned by `register_consumer`: await it to consume until the consumer is deregistered.
StartConsumingCallable = Callable[[], Coroutine[Any, Any, None]]


class BaseMessageQueueConsumer(ABC):
    """Receives the messages whose type (routing key) is `message_type`.

    A consumer that returns normally has handled the message (it is acknowledged); one that
    raises has not (the queue retries it, then dead-letters it). `prefetch`, when set,
    bounds how many messages this consumer handles at once, overriding the queue's default.
    A `transient` consumer's queue lives only while it is registered (not durable, removed
    when it stops): for replies meant for one process, such as tool-call answers.
    `binding_keys` are the routing keys its queue takes (by default its own message type); a
    transient consumer may add shared keys to receive a broadcast every replica gets.
    """

    def __init__(
        self,
        *,
        message_type: str,
        id_: str | None = None,
        prefetch: int | None = None,
        transient: bool = False,
        binding_keys: tuple[str, ...] = (),
    ) -> None:
        self.message_type = validate_routing_key(message_type)
        extra = tuple(validate_routing_key(key) for key in binding_keys)
        if extra and not transient:
            raise ConfigurationError("only transient consumers take extra binding keys")
        self.binding_keys: tuple[str, ...] = (
            self.message_type,
            *(key for key in extra if key != self.message_type),
        )
        self.id_ = id_ or str(uuid.uuid4())
        if prefetch is not None and prefetch < 1:
            raise ConfigurationError(f"prefetch must be at least 1, got {prefetch}")
        self.prefetch = prefetch
        self.transient = transient

    async def process_message(self, message: QueueMessage, **kwargs: Any) -> Any:
        """Handle one message; the queue awaits this before it acknowledges the message."""
        return await self._process_message(message, **kwargs)

    @abstractmethod
    async def _process_message(self, message: QueueMessage, **kwargs: Any) -> Any:
        """Subclasses do the work here."""

    async def on_dead_letter(self, message: QueueMessage, reason: str) -> None:  # noqa: B027
        """Called when one of this consumer's messages is dead-lettered (with the reason), so
        whoever waits for its outcome can be told; nothing by default."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.message_type!r} id={self.id_}>"
