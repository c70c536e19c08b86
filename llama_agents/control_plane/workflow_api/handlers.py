"""Handlers as tasks: the one mapping between the workflow server's handlers and our tasks.

- A workflow is a registered service with a workflow description (`WorkflowService`,
  `AgentService`), named by its service name.
- A run is a task with `service` = the workflow: `run_id` is its task id.
- A handler is a session of runs: a run started through this API without a `handler_id` (or
  with a new one, `h`) is the task `h` in a new session `h`; a run started with the
  `handler_id` of a finished handler is a new task in that session, which starts from the
  context the previous run ended with (our sessions keep it), as the server's "continue from
  a previous completed run" does. The handler's state is its latest run's.
- A task made by our own API is a handler too: `handler_id` is its session id when it has
  one (that session's runs are the handler's), else its task id.

So `handler_id == task_id` for every first run, our API, CLI and monitor show every run, and
`GET /tasks/{handler_id}` finds the handler's first run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

from llama_agents.control_plane.models import NewTask
from llama_agents.control_plane.tasks import TaskManager
from llama_agents.control_plane.workflow_api.envelopes import WorkflowShape, result_envelope
from llama_agents.control_plane.workflow_api.models import HandlerData, HandlerStatus
from llama_agents.errors import (
    HandlerRunningError,
    SessionExistsError,
    SessionNotFoundError,
    TaskExistsError,
)
from llama_agents.messages import ServiceDefinition
from llama_agents.messages.records import TaskRecord, TaskStatus

#: Handlers `GET /handlers` reads at most (newest first).
MAX_LISTED = 1000


def is_workflow(definition: ServiceDefinition | None) -> bool:
    return definition is not None and definition.workflow is not None


def workflow_shape(definition: ServiceDefinition | None) -> WorkflowShape | None:
    if definition is None or definition.workflow is None:
        return None
    return WorkflowShape.of(definition.service_name, definition.workflow)


def status_of(status: TaskStatus) -> HandlerStatus:
    if status is TaskStatus.COMPLETED:
        return "completed"
    if status is TaskStatus.FAILED:
        return "failed"
    if status is TaskStatus.CANCELLED:
        return "cancelled"
    return "running"  # pending, running and waiting for input are one "running" there


def handler_id_of(record: TaskRecord) -> str:
    return record.session_id or record.task_id


def handler_data(record: TaskRecord, shape: WorkflowShape | None) -> HandlerData:
    status = status_of(record.status)
    ended = record.status.finished  # `finished_at` waits for the result's publish: not it
    return HandlerData(
        handler_id=handler_id_of(record),
        workflow_name=record.service or "",
        run_id=record.task_id,
        error=record.error if status == "failed" else None,
        result=result_envelope(record, shape),
        status=status,
        started_at=record.created_at.isoformat(),
        updated_at=record.updated_at.isoformat(),
        completed_at=(record.finished_at or record.updated_at).isoformat() if ended else None,
    )


def task_input(fields: dict[str, Any], text_fields: Iterable[str] = ("input", "user_msg")) -> str:
    """What our listings show as the run's input: its text field, else its fields as JSON."""
    for name in text_fields:
        value = fields.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return json.dumps(fields, sort_keys=True, default=str)


class Handlers:
    """Finds, starts, lists and purges handlers over the task manager."""

    def __init__(self, manager: TaskManager) -> None:
        self.manager = manager
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, handler_id: str) -> asyncio.Lock:
        lock = self._locks.get(handler_id)
        if lock is None:
            lock = self._locks[handler_id] = asyncio.Lock()
        return lock

    async def current(self, handler_id: str) -> TaskRecord | None:
        """The handler's current run: its session's latest task, else the task of that id."""
        manager = self.manager
        session = await manager.store.load_session(handler_id)
        tasks = list(session.body.get("tasks", [])) if session is not None else []
        for task_id in reversed(tasks):
            record = await manager.tasks.snapshot(task_id)
            if record is not None:
                return record
        return await manager.tasks.snapshot(handler_id)

    async def start(
        self, workflow: str, handler_id: str | None, start_event: dict[str, Any]
    ) -> TaskRecord:
        """Start a run of `workflow`: a new handler, or the next run of a finished one."""
        handler_id = handler_id or str(uuid.uuid4())
        manager = self.manager
        async with self._lock(handler_id):
            previous = await self.current(handler_id)
            if previous is not None and not previous.status.finished:
                raise HandlerRunningError(f"Handler {handler_id!r} is already running")
            with contextlib.suppress(SessionExistsError):  # continued: the session goes on
                await manager.sessions.create(handler_id)
            task_id = handler_id if previous is None else str(uuid.uuid4())
            new_task = NewTask(
                input=task_input(start_event),
                task_id=task_id,
                service=workflow,
                start_event=start_event,
                session_id=handler_id,
            )
            try:
                return await manager.create(new_task)
            except TaskExistsError:  # the id names a task of our own API
                new_task.task_id = str(uuid.uuid4())
                return await manager.create(new_task)

    async def list(
        self, statuses: set[str] | None, workflows: set[str] | None
    ) -> list[HandlerData]:
        """Every handler (its current run), newest first, filtered like the server's."""
        manager = self.manager
        await manager.registry.refresh()
        names = {d.service_name for d in manager.registry.all() if is_workflow(d)}
        if workflows is not None:
            names &= workflows
        seen: set[str] = set()
        found: list[HandlerData] = []
        cursor: str | None = None
        while len(seen) < MAX_LISTED:
            page, cursor = await manager.tasks.page(limit=500, cursor=cursor)
            for summary in page:
                if summary.service not in names:
                    continue
                handler_id = summary.session_id or summary.task_id
                if handler_id in seen:
                    continue  # an older run of a handler already listed
                seen.add(handler_id)
                record = await self.current(handler_id)
                if record is None:
                    continue
                data = handler_data(
                    record, workflow_shape(manager.registry.get(workflow_of(record)))
                )
                if statuses is None or data.status in statuses:
                    found.append(data)
            if cursor is None:
                break
        return found

    async def purge(self, handler_id: str) -> None:
        """Forget a handler: its runs (finished: cancel a running one first), their event
        logs and checkpoints, and its session with the context it carried."""
        manager = self.manager
        async with self._lock(handler_id):
            session = await manager.store.load_session(handler_id)
            runs = list(session.body.get("tasks", [])) if session is not None else []
            await manager.tasks.delete_finished([*runs, handler_id])
            with contextlib.suppress(SessionNotFoundError):  # a task of our API, no session
                await manager.sessions.delete(handler_id)


def workflow_of(record: TaskRecord) -> str:
    return record.service or ""
