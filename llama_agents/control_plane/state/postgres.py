"""`PostgresStateStore`: the control plane's state in PostgreSQL, shared by its replicas.

The same tables and semantics as the SQLite store, made safe for writers in several
processes at once:

- `save_task` is fenced in SQL (`UPDATE ... WHERE task_id = $1 AND version = $2`): of two
  replicas that read one version, exactly one saves; the other gets `ConcurrentUpdateError`
  and nothing of its transaction stays.
- Appends to one task's log are serial, across processes (`postgres_events.py`): sequences
  are gap-free and increase in commit order, and a redelivered `dedupe_key` is skipped.
- Every write that changes a task, a log, a session or a service calls `pg_notify` in its own
  transaction; the store's change feed (`postgres_feed.py`) hears them all and hands them to
  the store's watchers.
- Leases and replica liveness use the database's clock, never a replica's
  (`postgres_replicas.py`).

JSON bodies are `jsonb`, converted to and from dicts by a codec set on every connection.
Connections are pooled (`postgres_pool.py`): a server restart makes calls fail with
`StateStoreUnavailableError` while it lasts, and the same store works again after it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from llama_agents.control_plane.state.base import (
    EventRow,
    NewEvent,
    SessionRow,
    StateStore,
    StoreChange,
    TaskPage,
    TaskRow,
)
from llama_agents.control_plane.state.cursor import (
    decode_cursor_time,
    encode_cursor,
    timestamp_text,
)
from llama_agents.control_plane.state.postgres_events import append, delete_logs
from llama_agents.control_plane.state.postgres_feed import ChangeFeed, channel_for, encode_change
from llama_agents.control_plane.state.postgres_pool import PostgresPool, describe_dsn, load_asyncpg
from llama_agents.control_plane.state.postgres_replicas import PostgresReplicas
from llama_agents.control_plane.state.postgres_schema import (
    DEFAULT_SCHEMA,
    migrate,
    quote_identifier,
    validate_schema,
)
from llama_agents.control_plane.state.postgres_sessions import PostgresSessionsAndServices
from llama_agents.errors import ConcurrentUpdateError

_TASK_COLUMNS = "task_id, status, created_at, updated_at, body, version, session_id, finished_at"

#: The statuses a task ends in (the store knows them as text only).
_FINISHED = ["completed", "failed", "cancelled"]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _prepare_connection(connection: Any) -> None:
    """Every pooled connection reads and writes `jsonb` as Python dicts and lists."""
    await connection.set_type_codec(
        "jsonb", encoder=_dumps, decoder=json.loads, schema="pg_catalog"
    )


class PostgresStateStore(StateStore):
    """The state in schema `schema` of the database at `url` (created and migrated on open).

    `min_size`/`max_size` bound the connection pool; the change feed takes one more.
    """

    shared = True

    def __init__(
        self,
        url: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        load_asyncpg()  # say how to install it now, not at the first call
        self.url = url
        self.schema = validate_schema(schema)
        self._s = quote_identifier(schema)
        self.channel = channel_for(schema)
        #: What this store's connections call themselves in `pg_stat_activity`.
        self.application_name = f"llama_agents:{self.store_id}"
        self.listen_application_name = f"{self.application_name}:listen"
        self._pool = PostgresPool(
            url,
            min_size=min_size,
            max_size=max_size,
            application_name=self.application_name,
            init=_prepare_connection,
            connect_timeout=connect_timeout,
        )
        self.feed = ChangeFeed(
            lambda: self._pool.connect(self.listen_application_name),
            self.channel,
            self._announce,
            self.store_id,
        )
        self._replicas = PostgresReplicas(self._ready, self._s)
        self._records = PostgresSessionsAndServices(
            self._ready, self._s, self.channel, self._notice
        )
        self._open_lock = asyncio.Lock()
        self._opened = False

    def __repr__(self) -> str:
        return f"PostgresStateStore({describe_dsn(self.url)!r}, schema={self.schema!r})"

    # -- plumbing ---------------------------------------------------------------------

    async def open(self) -> None:
        async with self._open_lock:
            if self._opened:
                return
            await self._pool.open()
            try:
                await self._pool.run(lambda c: migrate(c, self.schema), idempotent=True)
                await self.feed.start()
            except BaseException:
                await self._pool.close()
                raise
            self._opened = True

    async def close(self) -> None:
        async with self._open_lock:
            self._opened = False
            await self.feed.close()
            await self._pool.close()

    async def _ready(self) -> PostgresPool:
        if not self._opened:
            await self.open()
        return self._pool

    def _notice(self, kind: str, key: str, version: int | None) -> str:
        return encode_change(StoreChange(kind, key, version, self.store_id))

    # -- tasks ------------------------------------------------------------------------

    async def insert_task(self, row: TaskRow) -> bool:
        sql = (
            f"INSERT INTO {self._s}.tasks (task_id, status, session_id, created_at, updated_at,"
            " finished_at, version, body) VALUES ($1, $2, $3, $4, $5, $6, 1, $7)"
            # RETURNING pg_notify: a notice only for a row written, delivered on commit.
            " ON CONFLICT (task_id) DO NOTHING RETURNING pg_notify($8, $9)"
        )
        args = (
            row.task_id,
            row.status,
            row.session_id,
            row.created_at,
            row.updated_at,
            row.finished_at,
            row.body,
            self.channel,
            self._notice("task", row.task_id, 1),
        )
        pool = await self._ready()
        inserted = await pool.run(lambda c: c.fetchrow(sql, *args), idempotent=False)
        if inserted is None:
            return False
        row.version = 1
        return True

    async def save_task(
        self,
        row: TaskRow,
        *,
        events: Sequence[NewEvent] = (),
        checkpoint: dict[str, Any] | None = None,
    ) -> list[EventRow]:
        s = self._s
        update = (
            f"UPDATE {s}.tasks SET status = $1, session_id = $2, updated_at = $3,"
            " finished_at = $4, version = version + 1, body = $5"
            " WHERE task_id = $6 AND version = $7 RETURNING pg_notify($8, $9)"
        )

        async def op(c: Any) -> tuple[list[EventRow], tuple[str, int] | None]:
            # The fence first: it also locks the task's row before its log's (see postgres_events).
            saved = await c.fetchrow(
                update,
                row.status,
                row.session_id,
                row.updated_at,
                row.finished_at,
                row.body,
                row.task_id,
                row.version,
                self.channel,
                self._notice("task", row.task_id, row.version + 1),
            )
            if saved is None:
                raise ConcurrentUpdateError(
                    f"task {row.task_id} changed since version {row.version} was read"
                )
            appended, sequences = await append(
                c, self._s, row.task_id, events, channel=self.channel, origin=self.store_id
            )
            if checkpoint is not None:
                await self._keep_checkpoint(c, row.task_id, checkpoint)
            if row.sequence_of is None:
                return appended, None
            key, dedupe_key = row.sequence_of
            sequence = sequences.get(dedupe_key)
            if sequence is None:
                sequence = await c.fetchval(
                    f"SELECT sequence FROM {s}.events WHERE task_id = $1 AND dedupe_key = $2",
                    row.task_id,
                    dedupe_key,
                )
            if sequence is None:
                return appended, None
            await c.execute(
                f"UPDATE {s}.tasks SET body = jsonb_set(body, ARRAY[$2::text],"
                " to_jsonb($3::bigint)) WHERE task_id = $1",
                row.task_id,
                key,
                sequence,
            )
            return appended, (key, int(sequence))

        pool = await self._ready()
        appended, numbered = await pool.transaction(op)
        if numbered is not None:
            row.body[numbered[0]] = numbered[1]
        row.version += 1
        return appended

    async def load_task(self, task_id: str) -> TaskRow | None:
        sql = f"SELECT {_TASK_COLUMNS} FROM {self._s}.tasks WHERE task_id = $1"
        pool = await self._ready()
        found = await pool.run(lambda c: c.fetchrow(sql, task_id), idempotent=True)
        return None if found is None else _task_row(found)

    async def list_tasks(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        statuses: frozenset[str] | None = None,
        session_id: str | None = None,
    ) -> TaskPage:
        where: list[str] = []
        args: list[Any] = []
        if statuses is not None:
            args.append(sorted(statuses))
            where.append(f"status = ANY(${len(args)}::text[])")
        if session_id is not None:
            args.append(session_id)
            where.append(f"session_id = ${len(args)}")
        if cursor is not None:
            created_at, task_id = decode_cursor_time(cursor)
            args += [created_at, task_id]
            where.append(f"(created_at, task_id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        sql = (
            f"SELECT {_TASK_COLUMNS} FROM {self._s}.tasks"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY created_at DESC, task_id DESC LIMIT ${len(args)}"
        )
        pool = await self._ready()
        found = await pool.run(lambda c: c.fetch(sql, *args), idempotent=True)
        rows = [_task_row(r) for r in found[:limit]]
        if len(found) <= limit:
            return TaskPage(rows, None)
        last = rows[-1]
        return TaskPage(rows, encode_cursor(timestamp_text(last.created_at), last.task_id))

    async def count_tasks(self) -> dict[str, int]:
        sql = f"SELECT status, count(*) FROM {self._s}.tasks GROUP BY status"
        pool = await self._ready()
        found = await pool.run(lambda c: c.fetch(sql), idempotent=True)
        return {str(r[0]): int(r[1]) for r in found}

    async def tasks_to_recover(self) -> list[TaskRow]:
        sql = (
            f"SELECT {_TASK_COLUMNS} FROM {self._s}.tasks WHERE finished_at IS NULL"
            " ORDER BY created_at, task_id"
        )
        pool = await self._ready()
        found = await pool.run(lambda c: c.fetch(sql), idempotent=True)
        return [_task_row(r) for r in found]

    async def delete_finished_before(self, cutoff: datetime, limit: int = 1000) -> int:
        s = self._s
        sql = (
            f"DELETE FROM {s}.tasks WHERE task_id IN (SELECT task_id FROM {s}.tasks"
            " WHERE finished_at < $1 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " RETURNING task_id"
        )

        async def op(c: Any) -> int:
            ids = [r[0] for r in await c.fetch(sql, cutoff, limit)]
            await delete_logs(c, self._s, ids, channel=self.channel, origin=self.store_id)
            return len(ids)

        pool = await self._ready()
        return await pool.transaction(op)

    async def delete_finished_tasks(self, task_ids: Sequence[str]) -> int:
        sql = (
            f"DELETE FROM {self._s}.tasks WHERE task_id = ANY($1::text[])"
            " AND status = ANY($2::text[]) RETURNING task_id"
        )

        async def op(c: Any) -> int:
            ids = [r[0] for r in await c.fetch(sql, list(task_ids), _FINISHED)]
            await delete_logs(c, self._s, ids, channel=self.channel, origin=self.store_id)
            return len(ids)

        pool = await self._ready()
        return await pool.transaction(op)

    # -- events -----------------------------------------------------------------------

    async def append_events(self, task_id: str, events: list[NewEvent]) -> list[EventRow]:
        if not events:
            return []

        async def op(c: Any) -> list[EventRow]:
            appended, _ = await append(
                c, self._s, task_id, events, channel=self.channel, origin=self.store_id
            )
            return appended

        pool = await self._ready()
        return await pool.transaction(op)

    async def read_events(self, task_id: str, after: int = 0, limit: int = 1000) -> list[EventRow]:
        sql = (
            f"SELECT sequence, body FROM {self._s}.events"
            " WHERE task_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3"
        )
        pool = await self._ready()
        found = await pool.run(lambda c: c.fetch(sql, task_id, after, limit), idempotent=True)
        return [EventRow(task_id, int(r[0]), r[1]) for r in found]

    async def last_sequence(self, task_id: str) -> int:
        sql = f"SELECT last_sequence FROM {self._s}.event_logs WHERE task_id = $1"
        pool = await self._ready()
        last = await pool.run(lambda c: c.fetchval(sql, task_id), idempotent=True)
        return 0 if last is None else int(last)

    # -- checkpoints ------------------------------------------------------------------

    async def _keep_checkpoint(self, c: Any, task_id: str, body: dict[str, Any]) -> None:
        await c.execute(
            f"INSERT INTO {self._s}.checkpoints (task_id, updated_at, body) VALUES ($1, now(), $2)"
            " ON CONFLICT (task_id) DO UPDATE SET updated_at = EXCLUDED.updated_at,"
            " body = EXCLUDED.body",
            task_id,
            body,
        )

    async def save_checkpoint(self, task_id: str, body: dict[str, Any]) -> None:
        pool = await self._ready()
        await pool.run(lambda c: self._keep_checkpoint(c, task_id, body), idempotent=True)

    async def load_checkpoint(self, task_id: str) -> dict[str, Any] | None:
        sql = f"SELECT body FROM {self._s}.checkpoints WHERE task_id = $1"
        pool = await self._ready()
        body = await pool.run(lambda c: c.fetchval(sql, task_id), idempotent=True)
        return None if body is None else dict(body)

    async def delete_checkpoint(self, task_id: str) -> None:
        sql = f"DELETE FROM {self._s}.checkpoints WHERE task_id = $1"
        pool = await self._ready()
        await pool.run(lambda c: c.execute(sql, task_id), idempotent=True)

    # -- sessions and services ----------------------------------------------------------

    async def insert_session(self, row: SessionRow) -> bool:
        return await self._records.insert_session(row)

    async def save_session(self, row: SessionRow) -> None:
        await self._records.save_session(row)

    async def load_session(self, session_id: str) -> SessionRow | None:
        return await self._records.load_session(session_id)

    async def delete_session(self, session_id: str) -> bool:
        return await self._records.delete_session(session_id)

    async def save_service(self, name: str, body: dict[str, Any]) -> None:
        await self._records.save_service(name, body)

    async def delete_service(self, name: str) -> bool:
        return await self._records.delete_service(name)

    async def all_services(self) -> dict[str, dict[str, Any]]:
        return await self._records.all_services()

    # -- replicas ---------------------------------------------------------------------

    async def beat(self, replica_id: str, ttl: float) -> None:
        await self._replicas.beat(replica_id, ttl)

    async def live_replicas(self) -> set[str]:
        return await self._replicas.live()

    async def forget_replica(self, replica_id: str) -> None:
        await self._replicas.forget(replica_id)

    async def try_lease(self, name: str, holder: str, ttl: float) -> bool:
        return await self._replicas.try_lease(name, holder, ttl)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._replicas.release_lease(name, holder)


def _task_row(found: Any) -> TaskRow:
    return TaskRow(
        task_id=found["task_id"],
        status=found["status"],
        created_at=found["created_at"],
        updated_at=found["updated_at"],
        body=found["body"],
        version=int(found["version"]),
        session_id=found["session_id"],
        finished_at=found["finished_at"],
    )
