"""Replica liveness and named leases in PostgreSQL, on the database's clock.

Every expiry is `now()` on the server plus a ttl, and every check compares with `now()` there:
replicas whose clocks disagree still agree on who is alive and who holds a lease.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from llama_agents.control_plane.state.postgres_pool import PostgresPool


class PostgresReplicas:
    """The `replicas` and `leases` tables of schema `s` (quoted), over the pool `ready` gives."""

    def __init__(self, ready: Callable[[], Awaitable[PostgresPool]], s: str) -> None:
        self._ready = ready
        self._s = s

    async def beat(self, replica_id: str, ttl: float) -> None:
        sql = (
            f"INSERT INTO {self._s}.replicas (replica_id, expires_at)"
            " VALUES ($1, now() + $2::float8 * interval '1 second')"
            " ON CONFLICT (replica_id) DO UPDATE SET expires_at = EXCLUDED.expires_at"
        )
        pool = await self._ready()
        await pool.run(lambda c: c.execute(sql, replica_id, ttl), idempotent=True)

    async def live(self) -> set[str]:
        sql = f"SELECT replica_id FROM {self._s}.replicas WHERE expires_at > now()"
        pool = await self._ready()
        found = await pool.run(lambda c: c.fetch(sql), idempotent=True)
        return {r[0] for r in found}

    async def forget(self, replica_id: str) -> None:
        sql = f"DELETE FROM {self._s}.replicas WHERE replica_id = $1"
        pool = await self._ready()
        await pool.run(lambda c: c.execute(sql, replica_id), idempotent=True)

    async def try_lease(self, name: str, holder: str, ttl: float) -> bool:
        s = self._s
        # Two takers at once: the second waits on the first's row, then finds it held.
        sql = (
            f"INSERT INTO {s}.leases (name, holder, expires_at)"
            " VALUES ($1, $2, now() + $3::float8 * interval '1 second')"
            " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,"
            " expires_at = EXCLUDED.expires_at"
            f" WHERE {s}.leases.holder = EXCLUDED.holder OR {s}.leases.expires_at <= now()"
            " RETURNING holder"
        )
        pool = await self._ready()
        # Idempotent: had a first attempt taken it, the retry renews it for the same holder.
        taken = await pool.run(lambda c: c.fetchrow(sql, name, holder, ttl), idempotent=True)
        return taken is not None

    async def release_lease(self, name: str, holder: str) -> None:
        sql = f"DELETE FROM {self._s}.leases WHERE name = $1 AND holder = $2"
        pool = await self._ready()
        await pool.run(lambda c: c.execute(sql, name, holder), idempotent=True)
