"""`ControlPlaneServer`: keeps tasks and services, asks the orchestrator, serves an HTTP API.

It consumes its own message type (`control_plane`) straight from the queue: services'
results and run updates reach it without an HTTP hop. Served (`launch_server`), it keeps its
state on disk by default; in a `LocalLauncher` it keeps it in memory.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from llama_agents._auth import auth_headers, configured_api_key
from llama_agents._serving import HttpServer
from llama_agents._settings import env_float, env_int, env_str
from llama_agents.control_plane.app import create_app
from llama_agents.control_plane.body_limit import default_max_request_bytes
from llama_agents.control_plane.models import NewTask
from llama_agents.control_plane.replicas import ReplicaWatch
from llama_agents.control_plane.state import StateStore, open_state_store
from llama_agents.control_plane.tasks import TaskManager
from llama_agents.errors import (
    ConfigurationError,
    NonRetryableMessageError,
    NotStartedError,
    ServiceNotFoundError,
    StateStoreUnavailableError,
)
from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_consumers.callable import CallableMessageConsumer
from llama_agents.message_consumers.remote import RemoteMessageConsumer
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import (
    CONTROL_PLANE_MESSAGE_TYPE,
    HUMAN_MESSAGE_TYPE,
    ActionTypes,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
)
from llama_agents.messages.envelope import utc_now
from llama_agents.messages.records import TaskRecord, TaskStatus, TaskSummary
from llama_agents.messages.runs import RunBounce, RunUpdate
from llama_agents.metrics import metrics_open as metrics_open_setting
from llama_agents.orchestrators.base import BaseOrchestrator

logger = logging.getLogger("llama_agents.control_plane")

#: Seconds between two purges of finished tasks past their retention.
_PURGE_EVERY = 3600.0


class ControlPlaneServer:
    """The control plane of a llama-agents system.

    Args:
        message_queue: the fabric it consumes `control_plane` from and publishes steps to.
        orchestrator: decides each task's next step (tasks that name a service skip it).
        state_store: a `StateStore`, a SQLite file path or a `sqlite:///` URL. Default:
            `LLAMA_AGENTS_STATE_URL` when set, else a SQLite file
            (`./.llama_agents/control_plane.sqlite3`) when served, memory when run by a
            `LocalLauncher`.
        host, port: where `launch_server` serves the HTTP API (`LLAMA_AGENTS_CONTROL_PLANE_HOST`
            / `_PORT`, else 127.0.0.1:8000; port 0 picks a free port).
        result_key: the default message type of final results (`human`).
        api_key: when set (default: `LLAMA_AGENTS_API_KEY`), every HTTP route but
            `/health` needs `Authorization: Bearer <key>`.
        step_timeout: seconds a step may go unanswered (a workflow run: without a sign of
            life) before its task fails (`LLAMA_AGENTS_STEP_TIMEOUT`, default 600; 0: never).
            A service's own `step_timeout` wins; human services have none by default.
        decision_timeout: seconds an orchestrator decision may take (default 120).
        max_concurrent_decisions: orchestrator decisions at once (default 16).
        retention_days: finished tasks older than this are deleted with their events
            (`LLAMA_AGENTS_RETENTION_DAYS`, default 30; 0 keeps them forever).
        max_request_bytes: the largest HTTP request body (`LLAMA_AGENTS_MAX_REQUEST_BYTES`,
            default 1 MiB); larger ones get 413.
        publish_retry_for: seconds a step or result the broker refuses (down, unroutable)
            is retried before its task fails (`LLAMA_AGENTS_PUBLISH_RETRY_FOR`, default 120).
        workflow_api_prefix: LlamaIndex's workflow-server API (what `llama-agents-client`'s
            `WorkflowClient` speaks) is served at the root and, when set, under this path too
            (`LLAMA_AGENTS_WORKFLOW_API_PREFIX`, for example `/workflow-server`).
        metrics_open: serve `GET /metrics` without the API key, for a scraper on a private
            network (`LLAMA_AGENTS_METRICS_OPEN`, default no).
        replica_interval, replica_ttl: on a shared store (PostgreSQL), where several control
            planes run as replicas: seconds between liveness beats
            (`LLAMA_AGENTS_REPLICA_INTERVAL`, default 2) and after which a silent replica
            counts as dead and its unfinished work is taken over (`LLAMA_AGENTS_REPLICA_TTL`,
            default 6).
    """

    def __init__(
        self,
        message_queue: BaseMessageQueue,
        orchestrator: BaseOrchestrator,
        state_store: StateStore | str | Path | None = None,
        host: str | None = None,
        port: int | None = None,
        *,
        result_key: str = HUMAN_MESSAGE_TYPE,
        prefetch: int | None = None,
        api_key: str | None = None,
        step_timeout: float | None = None,
        decision_timeout: float = 120.0,
        max_concurrent_decisions: int = 16,
        retention_days: float | None = None,
        max_request_bytes: int | None = None,
        publish_retry_for: float | None = None,
        workflow_api_prefix: str | None = None,
        metrics_open: bool | None = None,
        replica_interval: float | None = None,
        replica_ttl: float | None = None,
    ) -> None:
        self.message_queue = message_queue
        self.orchestrator = orchestrator
        self.state_store = state_store
        self.host = host or env_str("CONTROL_PLANE_HOST", "127.0.0.1")
        self.port = port if port is not None else env_int("CONTROL_PLANE_PORT", 8000)
        self.result_key = result_key
        self.prefetch = prefetch
        self.api_key = configured_api_key(api_key)
        self.metrics_open = metrics_open_setting(metrics_open)
        timeout = step_timeout if step_timeout is not None else env_float("STEP_TIMEOUT", 600.0)
        self.step_timeout = timeout if timeout > 0 else None
        self.decision_timeout = decision_timeout
        self.max_concurrent_decisions = max_concurrent_decisions
        days = retention_days if retention_days is not None else env_float("RETENTION_DAYS", 30)
        self.retention = timedelta(days=days) if days > 0 else None
        self.max_request_bytes = max_request_bytes or default_max_request_bytes()
        self.publish_retry_for = (
            publish_retry_for
            if publish_retry_for is not None
            else env_float("PUBLISH_RETRY_FOR", 120.0)
        )
        self.replica_interval = (
            replica_interval if replica_interval is not None else env_float("REPLICA_INTERVAL", 2.0)
        )
        self.replica_ttl = replica_ttl if replica_ttl is not None else env_float("REPLICA_TTL", 6.0)
        if self.replica_ttl <= self.replica_interval:
            raise ConfigurationError(
                f"replica_ttl ({self.replica_ttl:g}s) must be longer than replica_interval "
                f"({self.replica_interval:g}s)"
            )
        for name, value in (
            ("replica_interval", self.replica_interval),
            ("publish_retry_for", self.publish_retry_for),
            ("decision_timeout", decision_timeout),
            ("max_concurrent_decisions", max_concurrent_decisions),
            ("max_request_bytes", self.max_request_bytes),
        ):
            if value <= 0:
                raise ConfigurationError(f"{name} must be positive, got {value}")
        self.workflow_api_prefix = _prefix(
            workflow_api_prefix
            if workflow_api_prefix is not None
            else env_str("WORKFLOW_API_PREFIX", "")
        )
        self._store: StateStore | None = None
        self._manager: TaskManager | None = None
        # Concurrent start() calls (launch_server and register_to_message_queue, as the
        # README runs them) must open one store, not race two onto the same file.
        self._start_lock = asyncio.Lock()
        self._consumer: BaseMessageQueueConsumer | None = None
        self._http: HttpServer | None = None
        self._app: FastAPI | None = None
        self._serving = asyncio.Event()
        self._purger: asyncio.Task[None] | None = None
        self._replicas: ReplicaWatch | None = None
        self.stopping = asyncio.Event()

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
        """Started, and its broker connection is up and healthy."""
        return self._manager is not None and self.message_queue.is_healthy

    async def start(self, *, persist: bool = True) -> None:
        """Open the store, declare its queues, resume interrupted tasks (idempotent).

        `persist` chooses the default store when none was given: disk, or memory.
        """
        async with self._start_lock:
            if self._manager is None:
                await self._start(persist)

    async def _start(self, persist: bool) -> None:
        self.stopping.clear()
        store = self._store = open_state_store(self.state_store, persist=persist)
        await store.open()
        manager = TaskManager(
            store,
            self.orchestrator,
            self.message_queue,
            step_timeout=self.step_timeout,
            decision_timeout=self.decision_timeout,
            max_concurrent_decisions=self.max_concurrent_decisions,
            result_key=self.result_key,
            publish_retry_for=self.publish_retry_for,
        )
        await manager.registry.load()
        await self.message_queue.declare_human_queue(self.result_key)
        await self.message_queue.declare_queue(CONTROL_PLANE_MESSAGE_TYPE)
        self._manager = manager
        if store.shared:
            # One of several control planes: the recovery lease's holder recovers, for all.
            self._replicas = ReplicaWatch(
                store,
                manager.replica_id or store.store_id,
                manager.recover,
                interval=self.replica_interval,
                ttl=self.replica_ttl,
            )
            await self._replicas.start()
        else:
            await manager.recover()
        if self.retention is not None:
            self._purger = asyncio.create_task(self._purge_forever(), name="task-retention")

    async def close(self) -> None:
        """Stop consuming and stop background work; the state stays in the store."""
        self.stopping.set()
        if self._consumer is not None:
            try:
                await self.message_queue.deregister_consumer(self._consumer)
            except Exception:
                logger.debug("consumer already gone", exc_info=True)
            self._consumer = None
        if self._replicas is not None:
            await self._replicas.close()
            self._replicas = None
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
            self._purger = None
        if self._manager is not None:
            self._manager.events.close()
            await self._manager.close()
            self._manager = None
        if self._store is not None:
            # A store given as an object belongs to the caller: only close our own.
            if not isinstance(self.state_store, StateStore):
                await self._store.close()
            self._store = None
        if self._http is not None:
            self._http.stop()

    async def _purge_forever(self) -> None:
        """Delete finished tasks past their retention now, then every hour."""
        assert self.retention is not None
        while True:
            try:
                removed = await self.manager.tasks.purge(utc_now() - self.retention)
                if removed:
                    logger.info("deleted %d finished task(s) past their retention", removed)
            except Exception:
                logger.exception("purging old tasks failed")
            try:
                async with asyncio.timeout(_PURGE_EVERY):
                    await self.stopping.wait()
                return
            except TimeoutError:
                continue

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
        self.stopping.set()
        if self._manager is not None:
            self._manager.events.close()  # end event streams, or shutdown waits for them
            self._manager.log.close()
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
        """Handle a message sent to the control plane: a result, a run's update, a step
        handed back, or a new task.

        While the state store is unreachable (its database restarting) the message is held,
        not failed: it is handled again with backoff for up to `publish_retry_for` seconds,
        so a database restart dead-letters nothing.
        """
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.publish_retry_for
        delay = 0.2
        while True:
            try:
                await self._handle(message)
                return
            except StateStoreUnavailableError as exc:
                if loop.time() >= give_up_at or self.stopping.is_set():
                    raise
                logger.warning("state store unavailable (%s); message held, retrying", exc)
            try:
                async with asyncio.timeout(delay):
                    await self.stopping.wait()
            except TimeoutError:
                pass
            delay = min(delay * 2, 5.0)

    async def _handle(self, message: QueueMessage) -> None:
        manager = self.manager
        if message.action is ActionTypes.COMPLETED_TASK:
            await manager.handle_result(TaskResult.from_data(message.data))
        elif message.action is ActionTypes.RUN_UPDATE:
            await manager.runs.handle_update(RunUpdate.from_data(message.data))
        elif message.action is ActionTypes.RUN_BOUNCE:
            await manager.runs.handle_bounce(RunBounce.from_data(message.data))
        elif message.action is ActionTypes.NEW_TASK:
            await self.create_task(TaskDefinition.from_data(message.data))
        else:
            raise NonRetryableMessageError(
                f"the control plane does not handle {message.action!r} messages"
            )

    # -- services ---------------------------------------------------------------------

    async def register_service(self, definition: ServiceDefinition) -> None:
        await self.manager.registry.register(definition)

    async def deregister_service(self, service_name: str) -> None:
        if not await self.manager.registry.deregister(service_name):
            raise ServiceNotFoundError(service_name)

    async def list_services(self) -> list[ServiceDefinition]:
        await self.manager.registry.refresh()
        return self.manager.registry.all()

    async def get_service(self, service_name: str) -> ServiceDefinition:
        definition = await self.manager.registry.lookup(service_name)
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
            fields = task.model_dump(exclude={"step_id", "resume"})
            task = NewTask(**fields, result_key=result_key or self.result_key)
        elif result_key is not None:
            task = task.model_copy(update={"result_key": result_key})
        return await self.manager.create(task)

    async def get_task(self, task_id: str) -> TaskRecord:
        """A copy of the task's record (changing it changes nothing in the control plane)."""
        return await self.manager.read(task_id)

    async def list_tasks(self, limit: int = 1000) -> list[TaskSummary]:
        """The newest `limit` tasks."""
        summaries, _ = await self.manager.tasks.page(limit=limit, cursor=None)
        return summaries

    async def cancel_task(self, task_id: str) -> TaskRecord:
        return await self.manager.cancel(task_id)

    async def wait_for_task(self, task_id: str, timeout: float | None = None) -> TaskRecord:
        """Wait until the task finished (completed, failed or cancelled); return a copy."""
        return (await self.manager.wait(task_id, timeout)).model_copy(deep=True)

    async def wait_for_status(
        self, task_id: str, statuses: set[TaskStatus], timeout: float | None = None
    ) -> TaskRecord:
        """Wait until the task is in one of `statuses`."""
        wanted = {status.value for status in statuses}
        return await self.manager.wait_until(
            task_id,
            lambda r: r.status in statuses,
            timeout,
            stored=lambda body: body["status"] in wanted,
        )

    async def get_task_result(self, task_id: str) -> TaskResult | None:
        """The task's result once finished, else None."""
        record = await self.get_task(task_id)
        return record.result if record.status.finished else None

    async def send_event(
        self, task_id: str, type_name: str, data: dict[str, Any], step: str | None = None
    ) -> Any:
        """Send an event into the task's run (see `POST /tasks/{id}/events`)."""
        return await self.manager.runs.send_event(task_id, type_name, data, step)

    async def status(self) -> dict[str, Any]:
        manager = self._manager
        return {
            "service": "control_plane",
            "status": "running" if manager is not None else "stopped",
            "broker_connected": self.message_queue.is_connected,
            "broker_healthy": self.message_queue.is_healthy,
            "services": len(manager.registry.all()) if manager else 0,
            "tasks": await manager.tasks.counts() if manager else {},
            "decisions": (
                {
                    "in_flight": manager.decisions.in_flight,
                    "waiting": manager.decisions.waiting,
                    "limit": manager.decisions.concurrency,
                }
                if manager
                else {}
            ),
            "event_stream_readers": manager.log.readers if manager else 0,
            "replica": (
                {
                    "id": self._replicas.replica_id,
                    "holds_recovery_lease": self._replicas.holds_lease,
                }
                if self._replicas is not None
                else None
            ),
        }


def _prefix(value: str) -> str | None:
    """A URL path prefix as routers take it (`/a/b`), None for none; refused if malformed."""
    cleaned = value.strip().strip("/")
    if not cleaned:
        return None
    if any(c.isspace() or c in "?#" for c in cleaned):
        raise ConfigurationError(f"workflow_api_prefix must be a URL path, got {value!r}")
    return f"/{cleaned}"
