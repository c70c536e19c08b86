"""The service registry, and which registered services something actually consumes.

A registration is a promise made once; a process can die without taking it back. So the
listing asks the broker how many consumers each service's queue has right now (cached for a
moment, so a busy monitor does not ask on every refresh) and says which services are live.
"""

from __future__ import annotations

import asyncio
import time

from llama_agents.control_plane.events import ControlPlaneEvent, EventHub
from llama_agents.control_plane.state import StateStore
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import ServiceDefinition
from llama_agents.messages.records import ServiceInfo

#: Seconds a consumer count is reused before the broker is asked again.
LIVENESS_TTL = 2.0


class ServiceRegistry:
    """Registered services (stored), with their liveness read from the broker."""

    def __init__(self, store: StateStore, queue: BaseMessageQueue, events: EventHub) -> None:
        self.store = store
        self.queue = queue
        self.events = events
        self._services: dict[str, ServiceDefinition] = {}
        self._consumers: dict[str, tuple[float, int | None]] = {}
        self._loading = asyncio.Lock()  # reloads in order: the last one read last

    async def load(self, *, announce: bool = False) -> None:
        """Read every registration from the store (at start, and when another control
        plane on a shared store changed one); `announce` tells monitors what changed."""
        async with self._loading:
            stored = await self.store.all_services()
            loaded = {name: ServiceDefinition.model_validate(body) for name, body in stored.items()}
            before, self._services = self._services, loaded
        if not announce:
            return
        for name, definition in loaded.items():
            if before.get(name) != definition:
                self._consumers.pop(name, None)
                self.events.publish(
                    ControlPlaneEvent(kind="service", action="registered", service=definition)
                )
        for name in before.keys() - loaded.keys():
            self._consumers.pop(name, None)
            self.events.publish(
                ControlPlaneEvent(kind="service", action="deregistered", service_name=name)
            )

    async def register(self, definition: ServiceDefinition) -> None:
        await self.store.save_service(definition.service_name, definition.model_dump(mode="json"))
        self._services[definition.service_name] = definition
        self._consumers.pop(definition.service_name, None)
        self.events.publish(
            ControlPlaneEvent(kind="service", action="registered", service=definition)
        )

    async def deregister(self, name: str) -> bool:
        existed = await self.store.delete_service(name)
        removed = self._services.pop(name, None) is not None or existed
        self._consumers.pop(name, None)
        if removed:
            self.events.publish(
                ControlPlaneEvent(kind="service", action="deregistered", service_name=name)
            )
        return removed

    def get(self, name: str) -> ServiceDefinition | None:
        return self._services.get(name)

    async def refresh(self) -> None:
        """On a shared store, read the registry again: another control plane may have
        registered a service a moment ago, its notice still on the way."""
        if self.store.shared:
            await self.load(announce=True)

    async def lookup(self, name: str) -> ServiceDefinition | None:
        """The service, reading the store again if it is not known here (yet)."""
        found = self._services.get(name)
        if found is None and self.store.shared:
            await self.load(announce=True)
            found = self._services.get(name)
        return found

    def all(self) -> list[ServiceDefinition]:
        return sorted(self._services.values(), key=lambda d: d.service_name)

    async def consumers(self, name: str, *, fresh: bool = False) -> int | None:
        """How many consumers `name`'s queue has now (None when the queue cannot tell)."""
        cached = self._consumers.get(name)
        now = time.monotonic()
        if cached is not None and not fresh and now - cached[0] < LIVENESS_TTL:
            return cached[1]
        try:
            count = await self.queue.consumer_count(name)
        except Exception:
            count = None
        self._consumers[name] = (now, count)
        return count

    async def info(self, definition: ServiceDefinition) -> ServiceInfo:
        count = await self.consumers(definition.service_name)
        return ServiceInfo(
            **definition.model_dump(),
            consumers=count,
            live=None if count is None else count > 0,
        )

    async def infos(self) -> list[ServiceInfo]:
        return list(await asyncio.gather(*(self.info(d) for d in self.all())))
