"""Live changes of the control plane (tasks and services), fanned out to subscribers.

The monitor and any `GET /events` client get each change as it happens instead of polling.
A slow subscriber loses its oldest events rather than slowing the control plane down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from pydantic import BaseModel

from llama_agents.control_plane.models import TaskSummary
from llama_agents.messages import ServiceDefinition


class ControlPlaneEvent(BaseModel):
    """One change: a task saved, or a service registered or deregistered."""

    kind: Literal["task", "service"]
    action: Literal["updated", "registered", "deregistered"]
    task: TaskSummary | None = None
    service: ServiceDefinition | None = None
    service_name: str | None = None


class EventHub:
    """Fans events out to every subscriber's own bounded queue."""

    def __init__(self, backlog: int = 1000) -> None:
        self.backlog = backlog
        self._subscribers: set[asyncio.Queue[ControlPlaneEvent]] = set()

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: ControlPlaneEvent) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # drop the oldest: a slow reader must not stall us
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[ControlPlaneEvent]]:
        queue: asyncio.Queue[ControlPlaneEvent] = asyncio.Queue(maxsize=self.backlog)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
