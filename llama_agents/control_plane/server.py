"""`ControlPlaneServer`: keeps tasks and services, asks the orchestrator, serves an HTTP API.

It consumes its own message type (`control_plane`) straight from the queue: services'
results reach it without an HTTP hop. Served (`launch_server`), it keeps its state on disk
by default; in a `LocalLauncher` it keeps it in memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI
from llama_index.core.storage.kvstore.types import BaseKVStore

from llama_agents._auth import auth_headers, configured_api_key
from llama_agents._serving import HttpServer
from llama_agents._settings import env_int, env_str
from llama_agents.control_plane.app import create_app
from llama_agents.control_plane.models import NewTask, TaskRecord, TaskStatus
from llama_agents.control_plane.store import ControlPlaneStore, default_disk_store, in_memory_store
from llama_agents.control_plane.tasks import TaskManager
from llama_agents.errors import NonRetryableMessageError, NotStartedError, ServiceNotFoundError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_consumers.callable import CallableMessageConsumer
from llama_agents.message_consumers.remote import RemoteMessageConsumer
from llama_agents.message_queues.base import (
    CONTROL_PLANE_MESSAGE_TYPE,
    HUMAN_MESSAGE_TYPE,
    BaseMessageQueue,
)
from llama_agents.messages import (
    ActionTypes,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
)
from llama_agents.orchestrators.base import BaseOrchestrator

logger = logging.getLogger("llama_agents.control_plane")


class ControlPlaneServer:
    """The control plane of a llama-agents system.

    Args:
        message_queue: the fabric it consumes `control_plane` from and publishes steps to.
        orchestrator: decides each task's next step.
        state_store: any llama-index KV store (Redis, Postgres, ...). Default: a SQLite file
            (`LLAMA_AGENTS_STATE_PATH`, else `./.llama_agents/control_plane.sqlite3`) when
            served, memory when run by a `LocalLauncher`.
        host, port: where `launch_server` serves the HTTP API (`LLAMA_AGENTS_CONTROL_PLANE_HOST`
            / `_PORT`, else 127.0.0.1:8000; port 0 picks a free port).
        result_key: the default message type of final results (`human`).
        state_namespace: a prefix for the store's collections, so several control planes
            (or systems) can share one Redis or Postgres.
        api_key: when set (default: `LLAMA_AGENTS_API_KEY`), every HTTP route but
            `/health` needs `Authorization: Bearer <key>`.
    """

    def __init__(
        self,
        message_queue: BaseMessageQueue,
        orchestrator: BaseOrchestrator,
        state_store: BaseKVStore | None = None,
        host: str | None = None,
        port: int | None = None,
        *,
        result_key: str = HUMAN_MESSAGE_TYPE,
        prefetch: int | None = None,
        state_namespace: str = "",
        api_key: str | None = None,
    ) -> None:
        self.message_queue = message_queue
        self.orchestrator = orchestrator
        self.state_store = state_store
        self.host = host or env_str("CONTROL_PLANE_HOST", "127.0.0.1")
        self.port = port if port is not None else env_int("CONTROL_PLANE_PORT", 8000)
        self.result_key = result_key
        self.prefetch = prefetch
        self.state_namespace = state_namespace
        self.api_key = configured_api_key(api_key)
        self._manager: TaskManager | None = None
        self._consumer: BaseMessageQueueConsumer | None = None
        self._http: HttpServer | None = None
        self._app: FastAPI | None = None
        self._serving = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def manager(self) -> TaskManager:
        if self._manager is None:
            raise NotStartedError("the control plane is not started; call start() first")
        return self._manager

    @property
    def is_ready(self) -> bool:
        """Started, and its broker connection is up."""
        return self._manager is not None and self.message_queue.is_connected

    async def start(self, *, persist: bool = True) -> None:
        """Open the store, declare the results queue, resume interrupted tasks (idempotent).

        `persist` chooses the default store when none was given: disk, or memory.
        """
        if self._manager is not None:
            return
        if self.state_store is None:
            self.state_store = default_disk_store() if persist else in_memory_store()
        manager = TaskManager(
            ControlPlaneStore(self.state_store, namespace=self.state_namespace),
            self.orchestrator,
            self.message_queue,
        )
        await manager.load_services()
        await self.message_queue.declare_human_queue(self.result_key)
        await self.message_queue.declare_queue(CONTROL_PLANE_MESSAGE_TYPE)
        self._manager = manager
        await manager.recover()

    async def close(self) -> None:
        """Stop consuming and stop background work; the state stays in the store."""
        if self._consumer is not None:
            try:
                await self.message_queue.deregister_consumer(self._consumer)
            except Exception:
                logger.debug("consumer already gone", exc_info=True)
            self._consumer = None
        if self._manager is not None:
            self._manager.events.close()
            await self._manager.close()
            self._manager = None
        if self._http is not None:
            self._http.stop()

    def as_consumer(self, remote: bool = False) -> BaseMessageQueueConsumer:
        """The consumer of `control_plane` messages: in-process, or this server's URL."""
        if remote:
            return RemoteMessageConsumer(
                url=f"{self.url}/process_message",
                message_type=CONTROL_PLANE_MESSAGE_TYPE,
                headers=auth_headers(self.api_key),
            )
        return CallableMessageConsumer(
            handler=self.process_message,
            message_type=CONTROL_PLANE_MESSAGE_TYPE,
            prefetch=self.prefetch,
        )

    async def register_to_message_queue(self) -> StartConsumingCallable:
        """Start, register the consumer, and return the callable that starts consuming."""
        await self.start()
        if self._consumer is None:
            self._consumer = self.as_consumer()
        return await self.message_queue.register_consumer(self._consumer)

    async def launch_server(self) -> None:
        """Serve: state on disk, consume `control_plane`, answer HTTP until stopped."""
        await self.start(persist=True)
        start_consuming = await self.register_to_message_queue()
        consuming = asyncio.create_task(start_consuming())
        self._http = HttpServer(self.app, host=self.host, port=self.port)
        try:
            await self._http.serve(on_started=self._on_started)
        finally:
            self._serving.clear()
            consuming.cancel()
            await self.close()

    def stop_server(self) -> None:
        """Ask `launch_server` to return; it stops consuming and closes on the way out."""
        if self._manager is not None:
            self._manager.events.close()  # end event streams, or shutdown waits for them
        if self._http is not None:
            self._http.stop()

    def _on_started(self, port: int) -> None:
        self.port = port
        self._serving.set()
        logger.info("control plane serving on %s", self.url)

    async def wait_until_serving(self, timeout: float = 10.0) -> str:
        """Wait until `launch_server` answers HTTP; return its URL."""
        async with asyncio.timeout(timeout):
            await self._serving.wait()
        return self.url

    @property
    def app(self) -> FastAPI:
        if self._app is None:
            self._app = create_app(self)
        return self._app

    # -- messages ---------------------------------------------------------------------

    async def process_message(self, message: QueueMessage, **kwargs: Any) -> None:
        """Handle a message sent to the control plane: a step's result, or a new task."""
        if message.action is ActionTypes.COMPLETED_TASK:
            await self.manager.handle_result(TaskResult.from_data(message.data))
        elif message.action is ActionTypes.NEW_TASK:
            await self.create_task(TaskDefinition.from_data(message.data))
        else:
            raise NonRetryableMessageError(
                f"the control plane does not handle {message.action!r} messages"
            )

    # -- services ---------------------------------------------------------------------

    async def register_service(self, definition: ServiceDefinition) -> None:
        await self.manager.register_service(definition)

    async def deregister_service(self, service_name: str) -> None:
        if not await self.manager.deregister_service(service_name):
            raise ServiceNotFoundError(service_name)

    async def list_services(self) -> list[ServiceDefinition]:
        return self.manager.services()

    async def get_service(self, service_name: str) -> ServiceDefinition:
        definition = self.manager.service(service_name)
        if definition is None:
            raise ServiceNotFoundError(service_name)
        return definition

    # -- tasks ------------------------------------------------------------------------

    async def create_task(
        self, task: str | TaskDefinition | NewTask, *, result_key: str | None = None
    ) -> TaskRecord:
        """Store a task and start it; returns its record (status `pending`) at once."""
        if isinstance(task, str):
            task = TaskDefinition(input=task)
        if not isinstance(task, NewTask):
            task = NewTask(**task.model_dump(), result_key=result_key or self.result_key)
        elif result_key is not None:
            task = task.model_copy(update={"result_key": result_key})
        return await self.manager.create(task)

    async def get_task(self, task_id: str) -> TaskRecord:
        """A copy of the task's record (changing it changes nothing in the control plane)."""
        return (await self.manager.get(task_id)).model_copy(deep=True)

    async def list_tasks(self) -> list[TaskRecord]:
        return await self.manager.store.all_tasks()

    async def cancel_task(self, task_id: str) -> TaskRecord:
        return await self.manager.cancel(task_id)

    async def wait_for_task(self, task_id: str, timeout: float | None = None) -> TaskRecord:
        """Wait until the task finished (completed, failed or cancelled); return a copy."""
        return (await self.manager.wait(task_id, timeout)).model_copy(deep=True)

    async def wait_for_status(
        self, task_id: str, statuses: set[TaskStatus], timeout: float | None = None
    ) -> TaskRecord:
        """Wait until the task is in one of `statuses`."""
        return await self.manager.wait_until(task_id, lambda r: r.status in statuses, timeout)

    async def get_task_result(self, task_id: str) -> TaskResult | None:
        """The task's result once finished, else None."""
        record = await self.get_task(task_id)
        return record.result if record.status.finished else None

    async def status(self) -> dict[str, Any]:
        counts: dict[str, int] = {status.value: 0 for status in TaskStatus}
        for record in await self.list_tasks():
            counts[record.status.value] += 1
        return {
            "service": "control_plane",
            "status": "running" if self._manager is not None else "stopped",
            "broker_connected": self.message_queue.is_connected,
            "services": len(self.manager.services()) if self._manager else 0,
            "tasks": counts,
        }
