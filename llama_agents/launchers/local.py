"""`LocalLauncher`: run a whole system in this process for one task (scripts, notebooks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from llama_agents._sync import run_sync
from llama_agents.control_plane.models import TaskRecord, TaskStatus
from llama_agents.control_plane.server import ControlPlaneServer
from llama_agents.errors import TaskFailedError, TaskTimeoutError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.services.base import BaseService

logger = logging.getLogger("llama_agents.launchers")


class LocalLauncher:
    """Starts the queue, the control plane and the services in-process, runs one task
    through them, and removes what it declared.

    The control plane keeps its state in memory here unless it was given a store.
    """

    def __init__(
        self,
        services: Sequence[BaseService],
        control_plane: ControlPlaneServer,
        message_queue: BaseMessageQueue,
        *,
        timeout: float | None = None,
    ) -> None:
        self.services = list(services)
        self.control_plane = control_plane
        self.message_queue = message_queue
        self.timeout = timeout

    def launch_single(self, initial_task: str, timeout: float | None = None) -> str:
        """Run one task to its end and return the answer (blocking)."""
        return run_sync(self.alaunch_single(initial_task, timeout=timeout))

    async def alaunch_single(self, initial_task: str, timeout: float | None = None) -> str:
        """Run one task to its end and return the answer.

        Raises `TaskFailedError` if the task failed, `TaskTimeoutError` after `timeout`
        seconds (default: the launcher's `timeout`, else no limit).
        """
        record = await self.arun_task(initial_task, timeout=timeout)
        if record.status is not TaskStatus.COMPLETED or record.result is None:
            raise TaskFailedError(record.error or record.status.value, record.task_id)
        return record.result.result

    async def arun_task(self, initial_task: str, timeout: float | None = None) -> TaskRecord:
        """Run one task to its end and return its full record (steps, history, result)."""
        limit = timeout if timeout is not None else self.timeout
        consuming: list[asyncio.Task[None]] = []
        queue_task = await self.message_queue.launch_local()
        try:
            await self.control_plane.start(persist=False)
            start = await self.control_plane.register_to_message_queue()
            consuming.append(asyncio.create_task(start()))
            for service in self.services:
                start = await service.register_to_message_queue()
                await self.control_plane.register_service(service.service_definition)
                consuming.append(asyncio.create_task(start()))
            created = await self.control_plane.create_task(initial_task)
            try:
                return await self.control_plane.wait_for_task(created.task_id, timeout=limit)
            except TimeoutError:
                raise TaskTimeoutError(
                    f"task {created.task_id} did not finish within {limit}s"
                ) from None
        finally:
            await self._teardown(consuming, queue_task)

    async def _teardown(
        self, consuming: list[asyncio.Task[None]], queue_task: asyncio.Task[None]
    ) -> None:
        for service in self.services:
            with contextlib.suppress(Exception):
                await service.deregister_from_message_queue()
        await self.control_plane.close()
        try:
            await self.message_queue.cleanup()
        except Exception:
            logger.warning("could not clean up the message queue", exc_info=True)
        for task in (*consuming, queue_task):
            task.cancel()
        await asyncio.gather(*consuming, queue_task, return_exceptions=True)
