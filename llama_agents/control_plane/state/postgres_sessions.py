"""Sessions and the service registry in PostgreSQL.

Each write notifies (`pg_notify`, in its own transaction) so that other replicas drop what
they cache of that session or service; a session's save is fenced by its version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from llama_agents.control_plane.state.base import SessionRow
from llama_agents.control_plane.state.postgres_pool import PostgresPool
from llama_agents.errors import ConcurrentUpdateError

#: (kind, key, version) -> the payload of a notice of that change.
Notice = Callable[[str, str, int | None], str]


class PostgresSessionsAndServices:
    """The `sessions` and `services` tables of schema `s` (quoted), over the pool `ready`
    gives; notices go to `channel`."""

    def __init__(
        self,
        ready: Callable[[], Awaitable[PostgresPool]],
        s: str,
        channel: str,
        notice: Notice,
    ) -> None:
        self._ready = ready
        self._s = s
        self.channel = channel
        self._notice = notice

    # -- sessions ---------------------------------------------------------------------

    async def insert_session(self, row: SessionRow) -> bool:
        sql = (
            f"INSERT INTO {self._s}.sessions (session_id, created_at, updated_at, version, body)"
            " VALUES ($1, $2, $3, 1, $4) ON CONFLICT (session_id) DO NOTHING"
            " RETURNING pg_notify($5, $6)"
        )
        args = (
            row.session_id,
            row.created_at,
            row.updated_at,
            row.body,
            self.channel,
            self._notice("session", row.session_id, 1),
        )
        pool = await self._ready()
        if await pool.run(lambda c: c.fetchrow(sql, *args), idempotent=False) is None:
            return False
        row.version = 1
        return True

    async def save_session(self, row: SessionRow) -> None:
        sql = (
            f"UPDATE {self._s}.sessions SET updated_at = $1, version = version + 1, body = $2"
            " WHERE session_id = $3 AND version = $4 RETURNING pg_notify($5, $6)"
        )
        args = (
            row.updated_at,
            row.body,
            row.session_id,
            row.version,
            self.channel,
            self._notice("session", row.session_id, row.version + 1),
        )
        pool = await self._ready()
        if await pool.run(lambda c: c.fetchrow(sql, *args), idempotent=False) is None:
            raise ConcurrentUpdateError(
                f"session {row.session_id} changed since version {row.version} was read"
            )
        row.version += 1

    async def load_session(self, session_id: str) -> SessionRow | None:
        sql = (
            f"SELECT session_id, created_at, updated_at, body, version FROM {self._s}.sessions"
            " WHERE session_id = $1"
        )
        pool = await self._ready()
        found = await pool.run(lambda c: c.fetchrow(sql, session_id), idempotent=True)
        if found is None:
            return None
        return SessionRow(
            found["session_id"],
            found["created_at"],
            found["updated_at"],
            found["body"],
            int(found["version"]),
        )

    async def delete_session(self, session_id: str) -> bool:
        sql = f"DELETE FROM {self._s}.sessions WHERE session_id = $1 RETURNING pg_notify($2, $3)"
        notice = self._notice("session", session_id, None)
        pool = await self._ready()
        deleted = await pool.run(
            lambda c: c.fetchrow(sql, session_id, self.channel, notice), idempotent=False
        )
        return deleted is not None

    # -- services ---------------------------------------------------------------------

    async def save_service(self, name: str, body: dict[str, Any]) -> None:
        sql = (
            f"INSERT INTO {self._s}.services (name, body) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body RETURNING pg_notify($3, $4)"
        )
        notice = self._notice("service", name, None)
        pool = await self._ready()
        await pool.run(lambda c: c.execute(sql, name, body, self.channel, notice), idempotent=True)

    async def delete_service(self, name: str) -> bool:
        sql = f"DELETE FROM {self._s}.services WHERE name = $1 RETURNING pg_notify($2, $3)"
        notice = self._notice("service", name, None)
        pool = await self._ready()
        deleted = await pool.run(
            lambda c: c.fetchrow(sql, name, self.channel, notice), idempotent=False
        )
        return deleted is not None

    async def all_services(self) -> dict[str, dict[str, Any]]:
        sql = f"SELECT name, body FROM {self._s}.services ORDER BY name"
        pool = await self._ready()
        found = await pool.run(lambda c: c.fetch(sql), idempotent=True)
        return {r["name"]: r["body"] for r in found}
