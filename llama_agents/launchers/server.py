"""`ServerLauncher`: every part of a system served from one process, until Ctrl-C/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine, Sequence
from typing import Any

from llama_agents._runtime import run, tune_gc_for_serving
from llama_agents.control_plane.server import ControlPlaneServer
from llama_agents.errors import StartupError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.message_queues.simple import SimpleMessageQueue
from llama_agents.messages.envelope import CONTROL_PLANE_MESSAGE_TYPE
from llama_agents.services.base import BaseService

logger = logging.getLogger("llama_agents.launchers")


class ServerLauncher:
    """Serves the message queue (when it is the embedded one), the control plane and every
    service over HTTP, registers the services with the control plane, and runs the
    `additional_consumers` (e.g. a `human` result handler).

    Ctrl-C or SIGTERM stops it cleanly: consumers stop taking messages, the messages being
    handled are finished, then the servers close. Nothing is left half-handled.
    """

    def __init__(
        self,
        services: Sequence[BaseService],
        control_plane: ControlPlaneServer,
        message_queue: BaseMessageQueue,
        additional_consumers: Sequence[BaseMessageQueueConsumer] = (),
    ) -> None:
        self.services = list(services)
        self.control_plane = control_plane
        self.message_queue = message_queue
        self.additional_consumers = list(additional_consumers)
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        #: Set by `launch_servers`: the launcher is the process, not a guest in an application.
        self._owns_process = False

    def launch_servers(self) -> None:
        """Serve everything until Ctrl-C or SIGTERM (blocking)."""
        self._owns_process = True
        run(self.alaunch_servers())

    async def alaunch_servers(self) -> None:
        """Serve everything until `shutdown()`, Ctrl-C or SIGTERM."""
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.shutdown)
                handled.append(sig)
        servers: list[asyncio.Task[None]] = []
        consuming: list[asyncio.Task[None]] = []
        try:
            await self._start(servers, consuming)
            self._ready.set()
            logger.info("all servers ready; control plane at %s", self.control_plane.url)
            if self._owns_process:
                tune_gc_for_serving()
            await self._stop.wait()
        finally:
            await self._stop_all(servers, consuming)
            for sig in handled:
                loop.remove_signal_handler(sig)

    async def _start(
        self, servers: list[asyncio.Task[None]], consuming: list[asyncio.Task[None]]
    ) -> None:
        if isinstance(self.message_queue, SimpleMessageQueue):
            servers.append(asyncio.create_task(self.message_queue.launch_server()))
            await self.message_queue.wait_until_serving()
        servers.append(asyncio.create_task(self.control_plane.launch_server()))
        await _ready_or_failed(self.control_plane.wait_until_serving(), servers[-1])
        for service in self.services:
            servers.append(asyncio.create_task(service.launch_server()))
            await _ready_or_failed(service.wait_until_serving(), servers[-1])
            await service.register_to_control_plane(
                self.control_plane.url, api_key=self.control_plane.api_key
            )
        for consumer in self.additional_consumers:
            start = await self.message_queue.register_consumer(consumer)
            consuming.append(asyncio.create_task(start()))

    async def wait_until_ready(self, timeout: float = 30.0) -> None:
        """Wait until every server answers and every service is registered."""
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    def shutdown(self) -> None:
        """Ask the launcher to stop (what Ctrl-C and SIGTERM do)."""
        self._stop.set()

    async def _stop_all(
        self, servers: list[asyncio.Task[None]], consuming: list[asyncio.Task[None]]
    ) -> None:
        for consumer in self.additional_consumers:
            with contextlib.suppress(Exception):
                await self.message_queue.deregister_consumer(consumer)
        # Services first, each draining its consumer (waiting runs are released), then the
        # control plane once it took what they last sent, then the embedded queue.
        service_servers = servers[-len(self.services) :] if self.services else []
        for service in reversed(self.services):
            service.stop_server()
        await asyncio.gather(*service_servers, return_exceptions=True)
        if isinstance(self.message_queue, SimpleMessageQueue):
            await self.message_queue.wait_idle(CONTROL_PLANE_MESSAGE_TYPE, timeout=10.0)
        self.control_plane.stop_server()
        if isinstance(self.message_queue, SimpleMessageQueue):
            self.message_queue.stop_server()
        await asyncio.gather(*servers, return_exceptions=True)
        for task in consuming:
            task.cancel()
        await asyncio.gather(*consuming, return_exceptions=True)
        await self.message_queue.close()


async def _ready_or_failed(ready: Coroutine[Any, Any, Any], server: asyncio.Task[None]) -> None:
    """Wait for a server to be ready; if it dies first, raise its error."""
    waiting = asyncio.ensure_future(ready)
    done, _ = await asyncio.wait({waiting, server}, return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        waiting.cancel()
        server.result()  # raises why it stopped
        raise StartupError("a server stopped before it was ready")
    waiting.result()
