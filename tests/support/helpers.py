"""Test helpers that wait on events, never on the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from llama_agents import CallableMessageConsumer, QueueMessage

DEADLINE = 15.0


class Collector:
    """Records what a consumer received; lets a test await a condition with a deadline."""

    def __init__(self) -> None:
        self.messages: list[QueueMessage] = []
        self._changed = asyncio.Condition()

    async def handle(self, message: QueueMessage) -> None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = DEADLINE) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_for(self, count: int, timeout: float = DEADLINE) -> list[QueueMessage]:
        await self.wait_until(lambda: len(self.messages) >= count, timeout)
        return self.messages

    def consumer(self, message_type: str, **kwargs: Any) -> CallableMessageConsumer:
        return CallableMessageConsumer(handler=self.handle, message_type=message_type, **kwargs)

    @property
    def ids(self) -> list[str]:
        return [m.id_ for m in self.messages]


class StepsObserved:
    """A service mixin that says when it has handled a step (settled, released or failed).

    The control plane may apply what a step reported before the service has returned from
    the step; a test that checks the service after that awaits `step_handled`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step_handled = asyncio.Event()

    async def handle_message(self, message: QueueMessage, **kwargs: Any) -> None:
        try:
            await super().handle_message(message, **kwargs)  # type: ignore[misc]
        finally:
            self.step_handled.set()
