"""The PostgreSQL store's tables, and the numbered migrations that create them.

Everything lives in one schema (default `llama_agents`), so two systems can share a database
under two schema names. `migrate()` runs when a store opens: in one transaction, under an
advisory lock taken per schema, it creates the schema and the `schema_migrations` table if
missing and applies the migrations not applied yet, in order. Two control planes that start
together therefore apply each migration exactly once; the second waits for the first.

A migration is only ever appended, never edited: a database records which numbers it has.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from llama_agents.errors import ConfigurationError

#: The schema when none is configured.
DEFAULT_SCHEMA = "llama_agents"

#: A plain lowercase identifier, short enough that the change channel's name (a prefix and
#: the schema) stays within PostgreSQL's 63 bytes.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")


def validate_schema(name: str) -> str:
    """`name` if it can be a schema of ours, else `ConfigurationError`."""
    if not _SCHEMA_NAME.fullmatch(name) or name.startswith("pg_"):
        raise ConfigurationError(
            f"invalid PostgreSQL schema name {name[:80]!r}: use up to 48 lowercase letters, "
            "digits and underscores, starting with a letter or underscore (not pg_)"
        )
    return name


def quote_identifier(name: str) -> str:
    """A validated name, quoted for SQL (where a parameter cannot stand)."""
    return '"' + validate_schema(name) + '"'


@dataclass(frozen=True)
class Migration:
    """One step of the schema; `sql` names the schema as `{schema}` (quoted when applied)."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "tasks, events, checkpoints, sessions, services",
        """
        -- COLLATE "C": ids sort by their bytes, as SQLite sorts them (and listing pages by id).
        CREATE TABLE {schema}.tasks (
            task_id text COLLATE "C" PRIMARY KEY,
            status text NOT NULL,
            session_id text,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            finished_at timestamptz,
            version bigint NOT NULL,
            body jsonb NOT NULL
        );
        CREATE INDEX tasks_by_created ON {schema}.tasks (created_at, task_id);
        CREATE INDEX tasks_by_status ON {schema}.tasks (status, created_at, task_id);
        CREATE INDEX tasks_by_session ON {schema}.tasks (session_id, created_at, task_id)
            WHERE session_id IS NOT NULL;
        CREATE INDEX tasks_finished ON {schema}.tasks (finished_at)
            WHERE finished_at IS NOT NULL;
        CREATE INDEX tasks_unfinished ON {schema}.tasks (created_at, task_id)
            WHERE finished_at IS NULL;

        -- One row per task with a log: its newest sequence. An appender locks it (FOR UPDATE)
        -- for its transaction, so appends to one task are serial and their sequences gap-free.
        CREATE TABLE {schema}.event_logs (
            task_id text COLLATE "C" PRIMARY KEY,
            last_sequence bigint NOT NULL
        );
        CREATE TABLE {schema}.events (
            task_id text COLLATE "C" NOT NULL,
            sequence bigint NOT NULL,
            dedupe_key text,
            body jsonb NOT NULL,
            PRIMARY KEY (task_id, sequence),
            CONSTRAINT events_dedupe UNIQUE (task_id, dedupe_key)
        );

        CREATE TABLE {schema}.checkpoints (
            task_id text COLLATE "C" PRIMARY KEY,
            updated_at timestamptz NOT NULL,
            body jsonb NOT NULL
        );
        CREATE TABLE {schema}.sessions (
            session_id text PRIMARY KEY,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version bigint NOT NULL,
            body jsonb NOT NULL
        );
        CREATE TABLE {schema}.services (name text PRIMARY KEY, body jsonb NOT NULL);
        """,
    ),
    Migration(
        2,
        "replica liveness and leases",
        """
        CREATE TABLE {schema}.replicas (
            replica_id text PRIMARY KEY,
            expires_at timestamptz NOT NULL
        );
        CREATE TABLE {schema}.leases (
            name text PRIMARY KEY,
            holder text NOT NULL,
            expires_at timestamptz NOT NULL
        );
        """,
    ),
)

#: The newest schema this version of llama-agents knows.
SCHEMA_VERSION = MIGRATIONS[-1].version


def migration_lock_key(schema: str) -> int:
    """The advisory lock (a signed 64-bit key) that serialises migrations of one schema."""
    digest = hashlib.sha256(f"llama_agents.migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def migrate(connection: Any, schema: str) -> list[int]:
    """Bring `schema` up to `SCHEMA_VERSION` over an asyncpg connection; return the numbers
    applied now (none when another process did it already).

    `ConfigurationError` when the schema was migrated by a newer llama-agents.
    """
    quoted = quote_identifier(schema)
    applied_now: list[int] = []
    async with connection.transaction():
        # Held until this transaction ends: a concurrent opener waits here, then finds
        # every migration recorded.
        await connection.execute("SELECT pg_advisory_xact_lock($1)", migration_lock_key(schema))
        # CREATE SCHEMA needs the right to create in the database, even IF NOT EXISTS: a
        # schema an administrator made beforehand must not need it.
        if not await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
        ):
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            int(row[0])
            for row in await connection.fetch(f"SELECT version FROM {quoted}.schema_migrations")
        }
        if done and max(done) > SCHEMA_VERSION:
            raise ConfigurationError(
                f"PostgreSQL schema {schema!r} was migrated by a newer llama-agents (to "
                f"{max(done)}; this one knows up to {SCHEMA_VERSION}): upgrade llama-agents"
            )
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            await connection.execute(migration.sql.format(schema=quoted))
            await connection.execute(
                f"INSERT INTO {quoted}.schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
    return applied_now
