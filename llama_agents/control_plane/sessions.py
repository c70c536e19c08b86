"""Sessions: tasks that continue one another's context, one at a time, in order.

A session remembers its tasks and, per service, the context the last of its runs there ended
with (a checkpoint, kept beside the task checkpoints under the session's own key). A task
created in a session while another of its tasks is active waits its turn; when the active one
ends, the next starts with the context the previous one left.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from typing import Any

from llama_agents.control_plane.conflicts import retry_on_conflict
from llama_agents.control_plane.state import SessionRow, StateStore
from llama_agents.errors import SessionExistsError, SessionNotFoundError
from llama_agents.messages.envelope import utc_now
from llama_agents.messages.records import SessionInfo


def _context_key(session_id: str, service: str) -> str:
    return f"session:{session_id}:{service}"


def _info(row: SessionRow) -> SessionInfo:
    body = row.body
    return SessionInfo(
        session_id=row.session_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        tasks=list(body.get("tasks", [])),
        active=body.get("active"),
        queued=list(body.get("queued", [])),
    )


class SessionManager:
    """Creates, reads and orders sessions in the state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[session_id] = lock
        return lock

    async def _load(self, session_id: str) -> SessionRow:
        row = await self.store.load_session(session_id)
        if row is None:
            raise SessionNotFoundError(session_id)
        return row

    async def create(self, session_id: str | None = None) -> SessionInfo:
        now = utc_now()
        row = SessionRow(
            session_id or str(uuid.uuid4()),
            now,
            now,
            {"tasks": [], "active": None, "queued": [], "services": []},
        )
        if not await self.store.insert_session(row):
            raise SessionExistsError(f"a session with id {row.session_id!r} already exists")
        return _info(row)

    async def get(self, session_id: str) -> SessionInfo:
        return _info(await self._load(session_id))

    async def delete(self, session_id: str) -> None:
        async with self._lock(session_id):
            row = await self._load(session_id)
            for service in row.body.get("services", []):
                await self.store.delete_checkpoint(_context_key(session_id, service))
            await self.store.delete_session(session_id)

    @retry_on_conflict
    async def enqueue(self, session_id: str, task_id: str) -> bool:
        """Add a task to the session; True when it may start now (no other is active)."""
        async with self._lock(session_id):
            row = await self._load(session_id)
            body = row.body
            body["tasks"].append(task_id)
            start_now = body.get("active") is None
            if start_now:
                body["active"] = task_id
            else:
                body["queued"].append(task_id)
            row.updated_at = utc_now()
            await self.store.save_session(row)
            return start_now

    @retry_on_conflict
    async def finished(self, session_id: str, task_id: str) -> str | None:
        """The active task ended: return the next task to start (now active), if any."""
        async with self._lock(session_id):
            row = await self.store.load_session(session_id)
            if row is None:
                return None
            body = row.body
            if task_id in body.get("queued", []):
                body["queued"].remove(task_id)  # ended (cancelled) before its turn
                next_task = None
            elif body.get("active") != task_id:
                return None
            else:
                queued = body.get("queued", [])
                next_task = queued.pop(0) if queued else None
                body["active"] = next_task
            row.updated_at = utc_now()
            await self.store.save_session(row)
            return next_task

    @retry_on_conflict
    async def save_context(self, session_id: str, service: str, checkpoint: dict[str, Any]) -> None:
        """Keep the context a session's run on `service` ended with, for its next task there."""
        async with self._lock(session_id):
            row = await self.store.load_session(session_id)
            if row is None:
                return  # deleted meanwhile: nothing continues from it
            if service not in row.body.setdefault("services", []):
                row.body["services"].append(service)
                row.updated_at = utc_now()
                await self.store.save_session(row)
            await self.store.save_checkpoint(_context_key(session_id, service), checkpoint)

    async def context(self, session_id: str, service: str) -> dict[str, Any] | None:
        """The context the session's last run on `service` ended with, if any."""
        found = await self.store.load_checkpoint(_context_key(session_id, service))
        return found or None
