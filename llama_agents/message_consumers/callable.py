"""A consumer that calls a Python function for every message."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from llama_agents.errors import ConfigurationTypeError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer
from llama_agents.messages import QueueMessage

MessageHandler = Callable[..., Any] | Callable[..., Awaitable[Any]]
DeadLetterHandler = Callable[[QueueMessage, str], Awaitable[None]]


class CallableMessageConsumer(BaseMessageQueueConsumer):
    """Calls `handler(message)` for each message of `message_type`.

    An async handler runs on the event loop; a plain function runs in a worker thread so a
    slow or blocking handler never stalls the loop.
    """

    def __init__(
        self,
        handler: MessageHandler,
        message_type: str,
        *,
        id_: str | None = None,
        prefetch: int | None = None,
        transient: bool = False,
        binding_keys: tuple[str, ...] = (),
        on_dead_letter: DeadLetterHandler | None = None,
    ) -> None:
        if not callable(handler):
            raise ConfigurationTypeError(f"handler must be callable, got {type(handler).__name__}")
        super().__init__(
            message_type=message_type,
            id_=id_,
            prefetch=prefetch,
            transient=transient,
            binding_keys=binding_keys,
        )
        self.handler = handler
        self._on_dead_letter = on_dead_letter
        self._is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - an object with an async __call__
        )

    async def _process_message(self, message: QueueMessage, **kwargs: Any) -> Any:
        if self._is_async:
            return await self.handler(message, **kwargs)
        result = await asyncio.to_thread(self.handler, message, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result

    async def on_dead_letter(self, message: QueueMessage, reason: str) -> None:
        if self._on_dead_letter is not None:
            await self._on_dead_letter(message, reason)
