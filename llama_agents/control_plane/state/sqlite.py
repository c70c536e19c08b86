"""`SqliteStateStore`: the control plane's state in one SQLite file (or in memory).

The embedded default: nothing to install. A WAL journal with `synchronous=NORMAL` by default,
SQLite's own advice for WAL: a write that returned survives any crash of the process (a
`kill -9` included), and the commit costs no `fsync`; a power cut or an operating system
crash may lose the last commits before the journal's next checkpoint. `synchronous="full"`
(`LLAMA_AGENTS_SQLITE_SYNCHRONOUS=full`) fsyncs every commit, so a write that returned is on
disk. All SQL runs on one worker thread, so the event loop never blocks on disk. Writes are
group-committed: the writes that arrive while a commit runs go into the next transaction,
each in its own savepoint, so under load one thread hop serves many writes, and one failing
write fails only itself. A transaction that cannot commit is rolled back, so the next one
starts clean.

One process writes a SQLite store (`shared` is False): its watchers hear of its own writes,
synchronously once each commit is done, so code written for a shared store runs on it too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from llama_agents._settings import env_str
from llama_agents.control_plane.state.base import (
    EventRow,
    NewEvent,
    SessionRow,
    StateStore,
    StoreChange,
    TaskPage,
    TaskRow,
)
from llama_agents.control_plane.state.cursor import decode_cursor, encode_cursor, timestamp_text
from llama_agents.errors import ConcurrentUpdateError, ConfigurationError

logger = logging.getLogger("llama_agents.control_plane.state")

T = TypeVar("T")

#: Bumped when the schema changes; `open()` refuses a file written by a newer version.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    session_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_created ON tasks (created_at, task_id);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, created_at, task_id);
CREATE INDEX IF NOT EXISTS tasks_by_finished ON tasks (finished_at);
CREATE INDEX IF NOT EXISTS tasks_by_session ON tasks (session_id, created_at)
    WHERE session_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    dedupe_key TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_dedupe ON events (task_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS checkpoints (
    task_id TEXT PRIMARY KEY,
    updated_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS replicas (replica_id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


def _ts(value: datetime | None) -> str | None:
    """A timestamp as fixed-width UTC text, so that text order is time order."""
    return None if value is None else timestamp_text(value)


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_Op = Callable[[sqlite3.Connection], Any]
#: What a write changed, from its result: told to the watchers once it is committed.
_Changes = Callable[[Any], Iterable[StoreChange]]


def _append(db: sqlite3.Connection, task_id: str, events: Sequence[NewEvent]) -> list[EventRow]:
    """Append to a task's log, numbering on from its last event; known keys are skipped."""
    if not events:
        return []
    (last,) = db.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM events WHERE task_id = ?", (task_id,)
    ).fetchone()
    appended: list[EventRow] = []
    for event in events:
        if (
            event.dedupe_key is not None
            and db.execute(
                "SELECT 1 FROM events WHERE task_id = ? AND dedupe_key = ?",
                (task_id, event.dedupe_key),
            ).fetchone()
        ):
            continue
        last += 1
        db.execute(
            "INSERT INTO events (task_id, seq, dedupe_key, body) VALUES (?, ?, ?, ?)",
            (task_id, last, event.dedupe_key, _dumps(event.body)),
        )
        appended.append(EventRow(task_id, last, event.body))
    return appended


def _delete_task(db: sqlite3.Connection, task_id: str) -> None:
    """A task, its event log and its run's checkpoint."""
    db.execute("DELETE FROM events WHERE task_id = ?", (task_id,))
    db.execute("DELETE FROM checkpoints WHERE task_id = ?", (task_id,))
    db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))


#: The statuses a task ends in (the store knows them as text only).
_FINISHED = ("completed", "failed", "cancelled")


def _keep_checkpoint(db: sqlite3.Connection, task_id: str, body: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO checkpoints (task_id, updated_at, body) VALUES (?, ?, ?)"
        " ON CONFLICT (task_id) DO UPDATE SET updated_at = excluded.updated_at,"
        " body = excluded.body",
        (task_id, _ts(datetime.now(UTC)), _dumps(body)),
    )


#: How a commit reaches the disk (SQLite's `PRAGMA synchronous`), see the module's docstring.
Synchronous = Literal["normal", "full"]
SYNCHRONOUS_MODES: tuple[Synchronous, ...] = ("normal", "full")


def synchronous_mode(value: str | None) -> Synchronous:
    """`value`, else `LLAMA_AGENTS_SQLITE_SYNCHRONOUS`, else `"normal"`; checked."""
    source = "synchronous=" if value is not None else "LLAMA_AGENTS_SQLITE_SYNCHRONOUS"
    mode = (value if value is not None else env_str("SQLITE_SYNCHRONOUS", "normal")).lower()
    if mode not in SYNCHRONOUS_MODES:
        raise ConfigurationError(
            f"SQLite synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {mode!r}"
            f" (from {source})"
        )
    return mode


class SqliteStateStore(StateStore):
    """The state in `path` (created with its folder if missing), or in memory (`":memory:"`).

    `synchronous`: `"normal"` (the default; survives a crash of the process) or `"full"`
    (also survives a power cut, at an `fsync` per commit); None reads
    `LLAMA_AGENTS_SQLITE_SYNCHRONOUS`.
    """

    def __init__(self, path: str | Path = ":memory:", *, synchronous: str | None = None) -> None:
        super().__init__()
        self.path = str(path)
        self.durable = self.path != ":memory:"
        self.synchronous = synchronous_mode(synchronous)
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-state")
        self._pending: list[tuple[_Op, _Changes | None, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._open_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SqliteStateStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- plumbing ---------------------------------------------------------------------

    async def open(self) -> None:
        async with self._open_lock:
            if self._db is None:
                self._db = await self._call(self._connect)

    def _connect(self) -> sqlite3.Connection:
        if self.durable:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            db.close()
            raise ConfigurationError(
                f"{self.path} was written by a newer llama-agents (schema {row[0]}, this one "
                f"reads up to {SCHEMA_VERSION}); upgrade llama-agents"
            )
        return db

    async def close(self) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait([writer])
        db, self._db = self._db, None
        if db is not None:
            await self._call(db.close)
        self._executor.shutdown(wait=False)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            await self.open()
        assert self._db is not None
        return await self._call(op, self._db)

    async def _write(
        self,
        op: Callable[[sqlite3.Connection], T],
        changes: Callable[[T], Iterable[StoreChange]] | None = None,
    ) -> T:
        """Run `op` in the next group commit; return its result once committed. `changes`
        says what it changed, from its result: the watchers hear of it after the commit (even
        if the caller was cancelled meanwhile)."""
        if self._db is None:
            await self.open()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._pending.append((op, changes, done))
        writer = self._writer
        if writer is None or writer.done() or writer.get_loop() is not loop:
            self._writer = loop.create_task(self._write_pending())
        return await done

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                outcomes = await self._call(self._commit, [op for op, _, _ in batch])
            except Exception as exc:  # the commit itself failed: nothing in it was saved
                logger.error("state store commit failed: %s", exc)
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, changes, done), (ok, value) in zip(batch, outcomes, strict=True):
                if ok and changes is not None:
                    self._tell(changes, value)
                if done.done():
                    continue
                if ok:
                    done.set_result(value)
                else:
                    done.set_exception(value)

    def _tell(self, changes: _Changes, result: Any) -> None:
        try:
            made = list(changes(result))
        except Exception:
            logger.exception("state store: describing a committed write failed")
            return
        for change in made:
            self._announce(change)

    def _change(self, kind: str, key: str, version: int | None) -> StoreChange:
        return StoreChange(kind, key, version, self.store_id)

    def _commit(self, ops: list[_Op]) -> list[tuple[bool, Any]]:
        """One transaction; each op in a savepoint so a failing op fails alone."""
        db = self._db
        assert db is not None
        outcomes: list[tuple[bool, Any]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                db.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, op(db)))
                except Exception as exc:
                    db.execute("ROLLBACK TO op")
                    outcomes.append((False, exc))
                db.execute("RELEASE op")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes

    # -- tasks ------------------------------------------------------------------------

    async def insert_task(self, row: TaskRow) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT INTO tasks (task_id, status, session_id, created_at, updated_at,"
                " finished_at, version, body) VALUES (?, ?, ?, ?, ?, ?, 1, ?)"
                " ON CONFLICT (task_id) DO NOTHING",
                (
                    row.task_id,
                    row.status,
                    row.session_id,
                    _ts(row.created_at),
                    _ts(row.updated_at),
                    _ts(row.finished_at),
                    _dumps(row.body),
                ),
            )
            return cursor.rowcount == 1

        def changes(inserted: bool) -> list[StoreChange]:
            return [self._change("task", row.task_id, 1)] if inserted else []

        inserted = await self._write(op, changes)
        if inserted:
            row.version = 1
        return inserted

    async def save_task(
        self,
        row: TaskRow,
        *,
        events: Sequence[NewEvent] = (),
        checkpoint: dict[str, Any] | None = None,
    ) -> list[EventRow]:
        def op(db: sqlite3.Connection) -> tuple[int, list[EventRow]]:
            appended = _append(db, row.task_id, events)
            if checkpoint is not None:
                _keep_checkpoint(db, row.task_id, checkpoint)
            if row.sequence_of is not None:
                key, dedupe_key = row.sequence_of
                found = db.execute(
                    "SELECT seq FROM events WHERE task_id = ? AND dedupe_key = ?",
                    (row.task_id, dedupe_key),
                ).fetchone()
                if found is not None:
                    row.body[key] = int(found[0])
            changed = db.execute(
                "UPDATE tasks SET status = ?, session_id = ?, updated_at = ?, finished_at = ?,"
                " version = version + 1, body = ? WHERE task_id = ? AND version = ?",
                (
                    row.status,
                    row.session_id,
                    _ts(row.updated_at),
                    _ts(row.finished_at),
                    _dumps(row.body),
                    row.task_id,
                    row.version,
                ),
            ).rowcount
            if changed != 1:
                # Nothing of this op may stay: its savepoint is rolled back.
                raise ConcurrentUpdateError(
                    f"task {row.task_id} changed since version {row.version} was read"
                )
            return changed, appended

        def changes(result: tuple[int, list[EventRow]]) -> list[StoreChange]:
            made = [self._change("task", row.task_id, row.version + 1)]
            return made + self._events_changed(row.task_id, result[1])

        _, appended = await self._write(op, changes)
        row.version += 1
        return appended

    def _events_changed(self, task_id: str, appended: list[EventRow]) -> list[StoreChange]:
        return [self._change("events", task_id, appended[-1].sequence)] if appended else []

    async def load_task(self, task_id: str) -> TaskRow | None:
        def op(db: sqlite3.Connection) -> TaskRow | None:
            found = db.execute(
                "SELECT task_id, status, created_at, updated_at, body, version, session_id,"
                " finished_at FROM tasks WHERE task_id = ?",
                (task_id,),
            ).fetchone()
            return None if found is None else _task_row(found)

        return await self._read(op)

    async def list_tasks(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        statuses: frozenset[str] | None = None,
        session_id: str | None = None,
    ) -> TaskPage:
        where: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(sorted(statuses))
        if session_id is not None:
            where.append("session_id = ?")
            params.append(session_id)
        if cursor is not None:
            created_at, task_id = decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND task_id < ?))")
            params.extend([created_at, created_at, task_id])
        sql = (
            "SELECT task_id, status, created_at, updated_at, body, version, session_id,"
            " finished_at FROM tasks"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY created_at DESC, task_id DESC LIMIT ?"
        )
        params.append(limit + 1)

        def op(db: sqlite3.Connection) -> TaskPage:
            found = db.execute(sql, params).fetchall()
            rows = [_task_row(r) for r in found[:limit]]
            more = len(found) > limit
            last = found[limit - 1] if more else None
            return TaskPage(rows, encode_cursor(last[2], last[0]) if last else None)

        return await self._read(op)

    async def count_tasks(self) -> dict[str, int]:
        def op(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall()
            return {str(status): int(count) for status, count in rows}

        return await self._read(op)

    async def tasks_to_recover(self) -> list[TaskRow]:
        def op(db: sqlite3.Connection) -> list[TaskRow]:
            found = db.execute(
                "SELECT task_id, status, created_at, updated_at, body, version, session_id,"
                " finished_at FROM tasks WHERE finished_at IS NULL ORDER BY created_at, task_id"
            ).fetchall()
            return [_task_row(r) for r in found]

        return await self._read(op)

    async def delete_finished_before(self, cutoff: datetime, limit: int = 1000) -> int:
        def op(db: sqlite3.Connection) -> list[str]:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT task_id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ?"
                    " LIMIT ?",
                    (_ts(cutoff), limit),
                ).fetchall()
            ]
            for task_id in ids:
                _delete_task(db, task_id)
            return ids

        deleted = await self._write(op, self._tasks_deleted)
        return len(deleted)

    def _tasks_deleted(self, task_ids: list[str]) -> list[StoreChange]:
        return [self._change("task", task_id, None) for task_id in task_ids]

    async def delete_finished_tasks(self, task_ids: Sequence[str]) -> int:
        def op(db: sqlite3.Connection) -> list[str]:
            deleted: list[str] = []
            for task_id in task_ids:
                found = db.execute(
                    "SELECT 1 FROM tasks WHERE task_id = ? AND status IN (?, ?, ?)",
                    (task_id, *_FINISHED),
                ).fetchone()
                if found is not None:
                    _delete_task(db, task_id)
                    deleted.append(task_id)
            return deleted

        deleted = await self._write(op, self._tasks_deleted)
        return len(deleted)

    # -- events -----------------------------------------------------------------------

    async def append_events(self, task_id: str, events: list[NewEvent]) -> list[EventRow]:
        return await self._write(
            lambda db: _append(db, task_id, events),
            lambda appended: self._events_changed(task_id, appended),
        )

    async def read_events(self, task_id: str, after: int = 0, limit: int = 1000) -> list[EventRow]:
        def op(db: sqlite3.Connection) -> list[EventRow]:
            found = db.execute(
                "SELECT seq, body FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (task_id, after, limit),
            ).fetchall()
            return [EventRow(task_id, int(seq), json.loads(body)) for seq, body in found]

        return await self._read(op)

    async def last_sequence(self, task_id: str) -> int:
        def op(db: sqlite3.Connection) -> int:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE task_id = ?", (task_id,)
            ).fetchone()
            return int(last)

        return await self._read(op)

    # -- checkpoints ------------------------------------------------------------------

    async def save_checkpoint(self, task_id: str, body: dict[str, Any]) -> None:
        await self._write(lambda db: _keep_checkpoint(db, task_id, body))

    async def load_checkpoint(self, task_id: str) -> dict[str, Any] | None:
        def op(db: sqlite3.Connection) -> dict[str, Any] | None:
            found = db.execute(
                "SELECT body FROM checkpoints WHERE task_id = ?", (task_id,)
            ).fetchone()
            return None if found is None else dict(json.loads(found[0]))

        return await self._read(op)

    async def delete_checkpoint(self, task_id: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM checkpoints WHERE task_id = ?", (task_id,))

        await self._write(op)

    # -- sessions ---------------------------------------------------------------------

    async def insert_session(self, row: SessionRow) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            return (
                db.execute(
                    "INSERT INTO sessions (session_id, created_at, updated_at, version, body)"
                    " VALUES (?, ?, ?, 1, ?) ON CONFLICT (session_id) DO NOTHING",
                    (
                        row.session_id,
                        _ts(row.created_at),
                        _ts(row.updated_at),
                        _dumps(row.body),
                    ),
                ).rowcount
                == 1
            )

        def changes(inserted: bool) -> list[StoreChange]:
            return [self._change("session", row.session_id, 1)] if inserted else []

        inserted = await self._write(op, changes)
        if inserted:
            row.version = 1
        return inserted

    async def save_session(self, row: SessionRow) -> None:
        def op(db: sqlite3.Connection) -> int:
            return db.execute(
                "UPDATE sessions SET updated_at = ?, version = version + 1, body = ?"
                " WHERE session_id = ? AND version = ?",
                (_ts(row.updated_at), _dumps(row.body), row.session_id, row.version),
            ).rowcount

        def changes(count: int) -> list[StoreChange]:
            return [self._change("session", row.session_id, row.version + 1)] if count else []

        if await self._write(op, changes) != 1:
            raise ConcurrentUpdateError(
                f"session {row.session_id} changed since version {row.version} was read"
            )
        row.version += 1

    async def load_session(self, session_id: str) -> SessionRow | None:
        def op(db: sqlite3.Connection) -> SessionRow | None:
            found = db.execute(
                "SELECT session_id, created_at, updated_at, body, version FROM sessions"
                " WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            if found is None:
                return None
            created_at, updated_at = _dt(found[1]), _dt(found[2])
            assert created_at is not None and updated_at is not None
            return SessionRow(found[0], created_at, updated_at, json.loads(found[3]), found[4])

        return await self._read(op)

    async def delete_session(self, session_id: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            return (
                db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,)).rowcount == 1
            )

        def changes(deleted: bool) -> list[StoreChange]:
            return [self._change("session", session_id, None)] if deleted else []

        return await self._write(op, changes)

    # -- services ---------------------------------------------------------------------

    async def save_service(self, name: str, body: dict[str, Any]) -> None:
        text = _dumps(body)

        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO services (name, body) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET body = excluded.body",
                (name, text),
            )

        await self._write(op, lambda _: [self._change("service", name, None)])

    async def delete_service(self, name: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM services WHERE name = ?", (name,)).rowcount == 1

        def changes(deleted: bool) -> list[StoreChange]:
            return [self._change("service", name, None)] if deleted else []

        return await self._write(op, changes)

    async def all_services(self) -> dict[str, dict[str, Any]]:
        def op(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            rows = db.execute("SELECT name, body FROM services ORDER BY name").fetchall()
            return {name: json.loads(body) for name, body in rows}

        return await self._read(op)

    # -- replicas ---------------------------------------------------------------------
    # One process uses a SQLite file, so its clock is the store's clock.

    async def beat(self, replica_id: str, ttl: float) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO replicas (replica_id, expires_at) VALUES (?, ?)"
                " ON CONFLICT (replica_id) DO UPDATE SET expires_at = excluded.expires_at",
                (replica_id, time.time() + ttl),
            )

        await self._write(op)

    async def live_replicas(self) -> set[str]:
        def op(db: sqlite3.Connection) -> set[str]:
            rows = db.execute(
                "SELECT replica_id FROM replicas WHERE expires_at > ?", (time.time(),)
            ).fetchall()
            return {str(r[0]) for r in rows}

        return await self._read(op)

    async def forget_replica(self, replica_id: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM replicas WHERE replica_id = ?", (replica_id,))

        await self._write(op)

    async def try_lease(self, name: str, holder: str, ttl: float) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            now = time.time()
            taken = db.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                (name, holder, now + ttl, now),
            )
            return taken.rowcount == 1

        return await self._write(op)

    async def release_lease(self, name: str, holder: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

        await self._write(op)


def _task_row(found: tuple[Any, ...]) -> TaskRow:
    task_id, status, created_at, updated_at, body, version, session_id, finished_at = found
    created, updated = _dt(created_at), _dt(updated_at)
    assert created is not None and updated is not None
    return TaskRow(
        task_id=task_id,
        status=status,
        created_at=created,
        updated_at=updated,
        body=json.loads(body),
        version=int(version),
        session_id=session_id,
        finished_at=_dt(finished_at),
    )
