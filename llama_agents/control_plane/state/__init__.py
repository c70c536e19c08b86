"""The control plane's durable state: tasks, their event logs and checkpoints, sessions, services.

`open_state_store()` turns what a user configures (a store, a file path, a URL, or nothing)
into a `StateStore`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
from llama_agents.control_plane.state.postgres import PostgresStateStore
from llama_agents.control_plane.state.postgres_schema import DEFAULT_SCHEMA
from llama_agents.control_plane.state.sqlite import SqliteStateStore
from llama_agents.errors import ConcurrentUpdateError, ConfigurationError

#: Where a served control plane keeps its state unless told otherwise.
DEFAULT_STATE_PATH = ".llama_agents/control_plane.sqlite3"


def open_state_store(spec: StateStore | str | Path | None, *, persist: bool) -> StateStore:
    """The store `spec` names.

    - a `StateStore`: itself;
    - `sqlite:///relative/path`, `sqlite:////absolute/path`, `sqlite://` (memory) or a plain
      file path: SQLite there;
    - `postgresql://...` (or `postgres://...`): PostgreSQL, in the schema named by the URL's
      `?schema=` parameter, else `LLAMA_AGENTS_STATE_SCHEMA`, else `llama_agents` (needs
      `pip install 'llama-agents[postgres]'`);
    - None: `LLAMA_AGENTS_STATE_URL` (or the older `LLAMA_AGENTS_STATE_PATH`) when set, else
      a file under `./.llama_agents/` when `persist` (a served control plane), else memory.
    """
    if isinstance(spec, StateStore):
        return spec
    if spec is None:
        spec = env_str("STATE_URL", "") or env_str("STATE_PATH", "")
        if not spec:
            return SqliteStateStore(DEFAULT_STATE_PATH if persist else ":memory:")
    text = str(spec)
    if text.startswith(("postgres://", "postgresql://")):
        url, schema = _split_schema(text)
        return PostgresStateStore(url, schema=schema or env_str("STATE_SCHEMA", DEFAULT_SCHEMA))
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite:///")  # sqlite:///rel.db, sqlite:////abs/path.db
    elif text.startswith("sqlite://"):
        text = text.removeprefix("sqlite://") or ":memory:"
    elif "://" in text:
        raise ConfigurationError(
            f"unsupported state store URL {text!r}: use a file path, sqlite:///path or "
            "postgresql://..."
        )
    return SqliteStateStore(text)


def _split_schema(url: str) -> tuple[str, str | None]:
    """The URL without its `schema` query parameter (asyncpg would take it for a server
    setting), and that parameter's value."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[-1] if schemas else None)


__all__ = [
    "DEFAULT_STATE_PATH",
    "ConcurrentUpdateError",
    "EventRow",
    "NewEvent",
    "PostgresStateStore",
    "SessionRow",
    "SqliteStateStore",
    "StateStore",
    "StoreChange",
    "TaskPage",
    "TaskRow",
    "open_state_store",
]
