"""What the issue-9 hardening tests share: a served control plane and the services they
drive, small orchestrators the tests steer, and ways to inject a fault into the real SQLite
store or to read what the store and the broker really hold.

Nothing here stands in for our own code: faults are injected into SQLite itself (a trigger
and a function on the store's connection), and what the tests read back is read from the
database file or from the broker directly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from llama_index.core.tools import BaseTool

from llama_agents import (
    BaseMessageQueue,
    BaseOrchestrator,
    BaseService,
    ComponentService,
    ControlPlaneServer,
    QueueMessage,
    RabbitMQMessageQueue,
    ServiceDefinition,
    TaskDefinition,
    TaskFailedError,
    TaskRecord,
    TaskResult,
    TaskStatus,
)
from llama_agents.control_plane import SqliteStateStore
from llama_agents.control_plane.state import StateStore, TaskRow
from llama_agents.messages.envelope import utc_now
from llama_agents.orchestrators import final_message, step_message
from tests.support.control_plane import serve, stop
from tests.support.helpers import DEADLINE

FINISHED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


#: Seconds a served control plane holds a step's publish mark in these tests.
TEST_MARK_DELAY = 1.0


def state_store(path: Path) -> StateStore:
    """The control plane's SQLite store in the file `path`."""
    return SqliteStateStore(path)


# -- orchestrators the tests steer ---------------------------------------------------------


class RouteByInput(BaseOrchestrator):
    """Sends the task to the service its input names (`"<service>: <text>"`), then answers
    with that step's result; a failed step fails the task with its error (as a pipeline's
    does). The simplest way to aim each task at one service."""

    async def get_next_messages(
        self, task_def: TaskDefinition, tools: list[BaseTool], state: dict[str, Any]
    ) -> tuple[list[QueueMessage], dict[str, Any]]:
        if state.get("error"):
            raise TaskFailedError(str(state["error"]), task_def.task_id)
        if "answer" in state:
            return [final_message(task_def, str(state["answer"]))], state
        if state.get("sent"):
            return [], state
        service, _, text = task_def.input.partition(":")
        return [step_message(service.strip(), text.strip(), task_def)], {"sent": True}

    async def add_result_to_state(
        self, result: TaskResult, state: dict[str, Any]
    ) -> dict[str, Any]:
        if result.error:
            return {**state, "error": result.error}
        return {**state, "answer": result.result}


# -- services the tests count ----------------------------------------------------------------


class ReadmeService(BaseService):
    """A custom service written as the README shows: `run_task` returns
    `TaskResult(task_id=..., result=...)`, with no step id (unless `echo_step_id`). It
    counts what it ran and may hold each step until the test opens `gate`."""

    def __init__(
        self,
        queue: BaseMessageQueue,
        name: str,
        description: str = "Does one thing.",
        *,
        answer: Callable[[str], str] = lambda text: text.upper(),
        hold: bool = False,
        echo_step_id: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(queue, name, description, **kwargs)
        self.answer = answer
        self.echo_step_id = echo_step_id
        self.inputs: list[str] = []
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        if not hold:
            self.gate.set()
        #: Every message this service published (its results), as it published them.
        self.published: list[QueueMessage] = []

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        self.inputs.append(task.input)
        self.started.set()
        await self.gate.wait()
        step_id = task.step_id if self.echo_step_id else None
        return TaskResult(task_id=task.task_id, step_id=step_id, result=self.answer(task.input))

    async def publish(self, message: QueueMessage) -> None:
        await super().publish(message)
        self.published.append(message.model_copy(deep=True))


# -- a served control plane ------------------------------------------------------------------


@dataclass
class Served:
    """A served control plane on `queue`, the services added to it, and an HTTP client."""

    queue: BaseMessageQueue
    control_plane: ControlPlaneServer
    http: httpx.AsyncClient
    services: list[BaseService] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.control_plane.url

    async def add(self, service: BaseService) -> BaseService:
        """Register `service` with the control plane and start consuming its queue."""
        await self.control_plane.register_service(service.service_definition)
        await service.launch_local()
        self.services.append(service)
        return service

    async def register(self, definition: ServiceDefinition) -> None:
        """Register a service that nothing runs; its queue exists, so steps wait there."""
        await self.control_plane.register_service(definition)
        await self.queue.declare_queue(definition.service_name)

    async def create(self, text: str) -> str:
        response = await self.http.post("/tasks", json={"input": text})
        assert response.status_code == 200, response.text
        return str(response.json()["task_id"])

    async def finished(self, task_id: str, timeout: float = DEADLINE) -> TaskRecord:
        return await self.control_plane.wait_for_status(task_id, FINISHED, timeout=timeout)

    async def published(self, task_id: str, steps: int = 1) -> TaskRecord:
        """The task once its first `steps` steps were confirmed by the broker."""
        return await self.control_plane.manager.wait_until(
            task_id,
            lambda r: len(r.steps) >= steps and all(s.published for s in r.steps[:steps]),
            timeout=DEADLINE,
        )


@asynccontextmanager
async def served(
    queue: BaseMessageQueue,
    store: StateStore | Path,
    orchestrator: BaseOrchestrator | None = None,
    **settings: Any,
) -> AsyncIterator[Served]:
    """A control plane served on a free port (its settings passed through), torn down with
    the services added to it."""
    control_plane = ControlPlaneServer(
        queue,
        orchestrator or RouteByInput(),
        store if not isinstance(store, Path) else state_store(store),
        port=0,
        **settings,
    )
    serving = await serve(control_plane)
    # Tests await a step's stored publish mark (`Served.published`) and then use their HTTP
    # client: a mark held 5 s would leave its connection idle as long as uvicorn keeps one.
    control_plane.manager.marks.delay = TEST_MARK_DELAY
    system = Served(queue, control_plane, httpx.AsyncClient(base_url=control_plane.url, timeout=30))
    try:
        yield system
    finally:
        await system.http.aclose()
        for service in system.services:
            service_gate = getattr(service, "gate", None)
            if isinstance(service_gate, asyncio.Event):
                service_gate.set()  # let held steps end, so stopping does not wait to drain
            await service.deregister_from_message_queue()
        await stop(control_plane, serving)


# -- faults in the real SQLite store, and what it really holds -------------------------------


@dataclass
class InjectedFault:
    """A fault armed in the store: the tasks it hit, and an event set when it first does.
    A paused fault holds the failing write (inside SQLite) until `release` is set."""

    hit: list[str] = field(default_factory=list)
    fired: asyncio.Event = field(default_factory=asyncio.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def wait(self) -> None:
        async with asyncio.timeout(DEADLINE):
            await self.fired.wait()


async def fail_first_step_result_save(store: StateStore, *, paused: bool = False) -> InjectedFault:
    """Make the store's first save recording the result of a task's first step fail, once,
    in SQLite itself (a trigger raising, as a full disk or an I/O error would); `paused`
    holds that save until the test releases it."""
    assert isinstance(store, SqliteStateStore)
    fault = InjectedFault()
    if not paused:
        fault.release.set()
    loop = asyncio.get_running_loop()

    def hits(task_id: str, before: str | None, after: str | None) -> int:
        if before == "pending" and after in ("completed", "failed") and not fault.hit:
            fault.hit.append(task_id)
            loop.call_soon_threadsafe(fault.fired.set)
            fault.release.wait(DEADLINE)
            return 1
        return 0

    def install(db: sqlite3.Connection) -> None:
        db.create_function("llama_test_fault", 3, hits)
        db.execute(
            "CREATE TEMP TRIGGER llama_test_fail_result BEFORE UPDATE ON main.tasks"
            " WHEN llama_test_fault(NEW.task_id, json_extract(OLD.body, '$.steps[0].status'),"
            " json_extract(NEW.body, '$.steps[0].status'))"
            " BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected by the test)'); END"
        )

    await store._read(install)
    return fault


def stored_task(path: Path, task_id: str) -> dict[str, Any] | None:
    """The task's record as the database file holds it, read on a connection of our own."""
    import json

    with sqlite3.connect(path) as db:
        found = db.execute("SELECT body FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if found is None else dict(json.loads(found[0]))


async def trace_statements(store: StateStore) -> list[str]:
    """Every SQL statement the store runs from now on (SQLite's own trace hook)."""
    assert isinstance(store, SqliteStateStore)
    statements: list[str] = []
    await store._read(lambda db: db.set_trace_callback(statements.append))
    return statements


#: A statement that reads task records themselves (not only their indexed columns).
_RECORD_READ = re.compile(r"\bSELECT\b[^;]*\bbody\b[^;]*\bFROM\s+tasks\b", re.I | re.S)


def record_reads(statements: list[str]) -> list[str]:
    return [s for s in statements if _RECORD_READ.search(s)]


async def insert_finished_tasks(
    store: StateStore, count: int, *, status: TaskStatus = TaskStatus.COMPLETED
) -> list[str]:
    """`count` finished tasks written straight into the store (newest last); their ids."""
    start = utc_now() - timedelta(hours=1)
    ids: list[str] = []
    records: list[TaskRecord] = []
    for n in range(count):
        at = start + timedelta(milliseconds=n)
        record = TaskRecord(
            task_id=f"old-{n:06d}",
            input=f"task {n}",
            status=status,
            created_at=at,
            updated_at=at,
            result_published=True,
            finished_at=at,
        )
        ids.append(record.task_id)
        records.append(record)
    for chunk in range(0, len(records), 500):
        await asyncio.gather(*(insert_task(store, r) for r in records[chunk : chunk + 500]))
    return ids


async def insert_task(store: StateStore, record: TaskRecord) -> None:
    """Write `record` straight into the store, as a running system would have."""
    assert await store.insert_task(row_of(record)), f"task {record.task_id} exists"


def row_of(record: TaskRecord) -> TaskRow:
    """A task record as the store keeps it."""
    return TaskRow(
        task_id=record.task_id,
        status=record.status.value,
        created_at=record.created_at,
        updated_at=record.updated_at,
        body=record.model_dump(mode="json"),
        session_id=record.session_id,
        finished_at=record.finished_at,
    )


# -- the broker, the clock, the logs ----------------------------------------------------------


async def broker_consumers(amqp_url: str, queue: str, expected: int) -> None:
    """Return once the broker itself says `queue` has `expected` consumers.

    The broker pushes no event when a consumer comes or goes (a killed process's connection
    is cleaned up on its side, in its own time): its answer is asked for again, each time a
    round trip to it, until it says so or the deadline passes.
    """
    from tests.support import broker

    async with asyncio.timeout(DEADLINE):
        while True:
            counts = await broker.queue_counts(amqp_url, queue)
            if counts is not None and counts[1] == expected:
                return


async def clock_passes(moment: datetime) -> None:
    """Return once the wall clock is past `moment`.

    Some scenarios need time itself to pass (a service down for longer than a replica's
    grace); nothing in the system marks that moment, so this is a timed wait, and the only
    one in these tests.
    """
    delay = (moment - utc_now()).total_seconds()
    if delay > 0:
        await asyncio.sleep(delay)


class LogWatch(logging.Handler):
    """Sets `seen` once a log record's message contains every one of `needles`."""

    def __init__(self, *needles: str) -> None:
        super().__init__(logging.DEBUG)
        self.needles = needles
        self.seen = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        if all(needle in record.getMessage() for needle in self.needles):
            self._loop.call_soon_threadsafe(self.seen.set)

    async def wait(self, timeout: float = DEADLINE) -> None:
        async with asyncio.timeout(timeout):
            await self.seen.wait()


@asynccontextmanager
async def watching(logger_name: str, *needles: str) -> AsyncIterator[LogWatch]:
    watch = LogWatch(*needles)
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(previous)


# -- a service served as its own process (`llama-agents serve service`) ---------------------


def _echo(text: str) -> str:
    return f"echo: {text}"


def build_echo() -> ComponentService:
    """The service the process tests serve; its name comes from `LLAMA_AGENTS_TEST_SERVICE`."""
    return ComponentService(
        _echo,
        RabbitMQMessageQueue(),
        "Echoes what it is given.",
        os.environ.get("LLAMA_AGENTS_TEST_SERVICE", "echo"),
    )
