"""Live changes of the control plane (tasks and services), fanned out to subscribers.

The monitor and any `GET /events` client get each change as it happens instead of polling.
A subscriber too slow to keep up does not slow the control plane down: its backlog is
replaced by one `resync` event, telling it to reload the lists.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from llama_agents.messages.records import ControlPlaneEvent

__all__ = ["ControlPlaneEvent", "EventHub"]


class EventHub:
    """Fans events out to every subscriber's own bounded queue."""

    def __init__(self, backlog: int = 1000) -> None:
        self.backlog = backlog
        self._subscribers: set[asyncio.Queue[ControlPlaneEvent | None]] = set()

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: ControlPlaneEvent) -> None:
        for queue in self._subscribers:
            if queue.full():
                # A slow reader must not stall us: drop its backlog, tell it to reload.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(ControlPlaneEvent(kind="resync", action="dropped"))
            queue.put_nowait(event)

    def close(self) -> None:
        """End every subscription (the control plane is stopping)."""
        for queue in self._subscribers:
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[ControlPlaneEvent | None]]:
        """A queue of events; `None` means the control plane is stopping."""
        queue: asyncio.Queue[ControlPlaneEvent | None] = asyncio.Queue(maxsize=self.backlog)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
