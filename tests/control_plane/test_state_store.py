"""The control plane's state store: fenced writes, paging, counts, gap-free event logs,
retention, change notices, leases and replica liveness, and a failed commit that leaves the
store usable. The behaviour suite runs against SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llama_agents.control_plane.state import (
    ConcurrentUpdateError,
    NewEvent,
    PostgresStateStore,
    SessionRow,
    SqliteStateStore,
    StateStore,
    StoreChange,
    TaskRow,
    open_state_store,
)
from llama_agents.errors import ConfigurationError
from tests.support.postgres import ChangeRecorder, PostgresSchemas, eventually

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def task(n: int, status: str = "running", **fields: object) -> TaskRow:
    at = T0 + timedelta(seconds=n)
    return TaskRow(
        task_id=f"t{n:04d}",
        status=status,
        created_at=at,
        updated_at=at,
        body={"n": n},
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], StateStore]:
    """A new (unopened) store of one backend: the behaviour suite runs once per backend."""
    if request.param == "postgres":
        postgres: PostgresSchemas = request.getfixturevalue("postgres")
        return lambda: PostgresStateStore(postgres.url, schema=postgres.schema)
    return lambda: SqliteStateStore(tmp_path / "state.sqlite3")


@pytest.fixture
async def store(make_store: Callable[[], StateStore]) -> AsyncIterator[StateStore]:
    async with make_store() as opened:
        yield opened


async def test_insert_is_once_and_saves_are_fenced(store: StateStore) -> None:
    row = task(1)
    assert await store.insert_task(row)
    assert not await store.insert_task(task(1))
    first = await store.load_task("t0001")
    second = await store.load_task("t0001")
    assert first is not None and second is not None
    first.body["decided"] = "a"
    await store.save_task(first)
    second.body["decided"] = "b"
    with pytest.raises(ConcurrentUpdateError):
        await store.save_task(second)
    stored = await store.load_task("t0001")
    assert stored is not None and stored.body["decided"] == "a" and stored.version == 2


async def test_listing_pages_newest_first_with_filters_and_counts(store: StateStore) -> None:
    for n in range(25):
        await store.insert_task(task(n, "completed" if n % 2 else "running", session_id="s"))
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_tasks(limit=10, cursor=cursor)
        seen += [row.task_id for row in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"t{n:04d}" for n in reversed(range(25))]
    done = await store.list_tasks(limit=100, statuses=frozenset({"completed"}))
    assert [r.task_id for r in done.rows] == [f"t{n:04d}" for n in reversed(range(1, 25, 2))]
    assert await store.count_tasks() == {"completed": 12, "running": 13}
    assert len((await store.list_tasks(limit=100, session_id="s")).rows) == 25
    with pytest.raises(ConfigurationError, match="invalid cursor"):
        await store.list_tasks(limit=10, cursor="garbage")


async def test_event_sequences_are_gap_free_and_idempotent(store: StateStore) -> None:
    await store.insert_task(task(1))

    async def emit(n: int) -> None:
        await store.append_events("t0001", [NewEvent({"n": n}, dedupe_key=f"k{n}")])

    await asyncio.gather(*(emit(n) for n in range(200)))
    # Redelivered: the same keys again append nothing.
    again = await store.append_events("t0001", [NewEvent({"n": 5}, dedupe_key="k5")])
    assert again == []
    events = await store.read_events("t0001", after=0, limit=1000)
    assert [e.sequence for e in events] == list(range(1, 201))
    assert sorted(e.body["n"] for e in events) == list(range(200))
    assert [e.sequence for e in await store.read_events("t0001", after=195)] == [
        196,
        197,
        198,
        199,
        200,
    ]
    assert await store.last_sequence("t0001") == 200


async def test_retention_deletes_finished_tasks_with_their_events(store: StateStore) -> None:
    old = task(1, "completed", finished_at=T0)
    recent = task(2, "completed", finished_at=T0 + timedelta(days=30))
    running = task(3)
    for row in (old, recent, running):
        await store.insert_task(row)
        await store.append_events(row.task_id, [NewEvent({"x": 1})])
        await store.save_checkpoint(row.task_id, {"ctx": row.task_id})
    assert await store.delete_finished_before(T0 + timedelta(days=7)) == 1
    assert await store.load_task("t0001") is None
    assert await store.read_events("t0001") == []
    assert await store.load_checkpoint("t0001") is None
    assert await store.load_checkpoint("t0002") == {"ctx": "t0002"}
    assert await store.load_task("t0003") is not None


async def test_sessions_and_services(store: StateStore) -> None:
    session = SessionRow("s1", T0, T0, {"tasks": []})
    assert await store.insert_session(session)
    assert not await store.insert_session(SessionRow("s1", T0, T0))
    session.body["tasks"].append("t1")
    await store.save_session(session)
    stale = SessionRow("s1", T0, T0, {}, version=1)
    with pytest.raises(ConcurrentUpdateError):
        await store.save_session(stale)
    loaded = await store.load_session("s1")
    assert loaded is not None and loaded.body == {"tasks": ["t1"]}
    assert await store.delete_session("s1") and not await store.delete_session("s1")
    await store.save_service("a", {"service_name": "a"})
    await store.save_service("b", {"service_name": "b"})
    assert await store.delete_service("a") and not await store.delete_service("a")
    assert await store.all_services() == {"b": {"service_name": "b"}}


async def test_a_failed_commit_is_rolled_back_and_the_store_keeps_working(
    tmp_path: Path,
) -> None:
    """A COMMIT that fails (here a deferred constraint; on a real disk, full or I/O error)
    must not leave the connection inside a transaction that fails every later write."""
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    await store.insert_task(task(1))

    def add_schema(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute(
            "CREATE TABLE child (parent INTEGER REFERENCES parent (id)"
            " DEFERRABLE INITIALLY DEFERRED)"
        )

    await store._write(add_schema)

    def orphan(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO child VALUES (42)")  # fails only at COMMIT

    with pytest.raises(sqlite3.IntegrityError):
        await store._write(orphan)
    row = await store.load_task("t0001")
    assert row is not None
    row.body["after"] = True
    await store.save_task(row)
    await store.close()
    async with SqliteStateStore(tmp_path / "state.sqlite3") as reopened:
        stored = await reopened.load_task("t0001")
        assert stored is not None and stored.body["after"] is True


async def _synchronous_level(store: SqliteStateStore) -> int:
    await store.open()
    try:
        return int(await store._read(lambda db: db.execute("PRAGMA synchronous").fetchone()[0]))
    finally:
        await store.close()


async def test_commits_survive_the_process_by_default_and_power_loss_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NORMAL (the default, SQLite's advice for WAL): a commit survives any crash of the
    process (tests/end_to_end/test_multiprocess.py kills the control plane with -9) and costs
    no fsync. FULL, by argument or environment: a commit that returned is on disk."""
    monkeypatch.delenv("LLAMA_AGENTS_SQLITE_SYNCHRONOUS", raising=False)
    path = tmp_path / "state.sqlite3"
    assert await _synchronous_level(SqliteStateStore(path)) == 1  # NORMAL
    assert await _synchronous_level(SqliteStateStore(path, synchronous="full")) == 2  # FULL
    monkeypatch.setenv("LLAMA_AGENTS_SQLITE_SYNCHRONOUS", "FULL")
    assert await _synchronous_level(SqliteStateStore(path)) == 2
    assert await _synchronous_level(SqliteStateStore(path, synchronous="normal")) == 1
    with pytest.raises(
        ConfigurationError,
        match=r"synchronous must be one of normal, full, got 'off' \(from synchronous=\)",
    ):
        SqliteStateStore(path, synchronous="off")
    monkeypatch.setenv("LLAMA_AGENTS_SQLITE_SYNCHRONOUS", "extra")
    with pytest.raises(
        ConfigurationError, match=r"got 'extra' \(from LLAMA_AGENTS_SQLITE_SYNCHRONOUS\)"
    ):
        SqliteStateStore(path)


async def test_a_save_logs_its_events_and_checkpoint_in_one_fenced_transaction(
    store: StateStore,
) -> None:
    row = task(1)
    await store.insert_task(row)
    stale = await store.load_task("t0001")
    assert stale is not None
    row.status = "completed"
    row.sequence_of = ("finished_event", "end")
    appended = await store.save_task(
        row,
        events=[NewEvent({"e": "step"}, "step"), NewEvent({"e": "end"}, "end")],
        checkpoint={"ctx": 1},
    )
    assert [e.sequence for e in appended] == [1, 2] and row.version == 2
    assert row.body["finished_event"] == 2
    stored = await store.load_task("t0001")
    assert stored is not None and stored.body == {"n": 1, "finished_event": 2}
    assert stored.status == "completed" and stored.version == 2
    # A stale writer's save is refused whole: no event, no checkpoint of it stays.
    with pytest.raises(ConcurrentUpdateError):
        await store.save_task(
            stale, events=[NewEvent({"e": "late"}, "late")], checkpoint={"ctx": "late"}
        )
    assert await store.last_sequence("t0001") == 2
    assert await store.load_checkpoint("t0001") == {"ctx": 1}
    assert stale.version == 1
    # A redelivered save (same keys) appends nothing, and still names the logged event.
    again = await store.load_task("t0001")
    assert again is not None
    again.body.pop("finished_event")
    again.sequence_of = ("finished_event", "end")
    assert await store.save_task(again, events=[NewEvent({"e": "end"}, "end")]) == []
    assert again.body["finished_event"] == 2 and again.version == 3
    await store.delete_checkpoint("t0001")
    assert await store.load_checkpoint("t0001") is None


async def test_watchers_hear_each_committed_write(store: StateStore) -> None:
    heard = ChangeRecorder()
    unwatch = store.watch(heard)
    me = store.store_id

    def seen(kind: str, key: str, version: int | None) -> Callable[[StoreChange], bool]:
        return lambda c: (c.kind, c.key, c.version, c.origin) == (kind, key, version, me)

    row = task(1)
    await store.insert_task(row)
    await heard.wait_for(seen("task", "t0001", 1))
    assert not await store.insert_task(task(1))  # nothing written: nothing heard
    await store.save_task(row, events=[NewEvent({"x": 1}), NewEvent({"x": 2})])
    await heard.wait_for(seen("task", "t0001", 2))
    await heard.wait_for(seen("events", "t0001", 2))
    await store.append_events("t0001", [NewEvent({"x": 3}, "k3")])
    await heard.wait_for(seen("events", "t0001", 3))
    session = SessionRow("s1", T0, T0)
    await store.insert_session(session)
    await store.save_session(session)
    await heard.wait_for(seen("session", "s1", 2))
    await store.delete_session("s1")
    await heard.wait_for(seen("session", "s1", None))
    await store.save_service("svc", {"service_name": "svc"})
    await heard.wait_for(seen("service", "svc", None))
    await store.delete_service("svc")
    row.status, row.finished_at = "completed", T0
    await store.save_task(row)
    await store.delete_finished_tasks(["t0001"])
    await heard.wait_for(seen("task", "t0001", None))
    # Writes that wrote nothing say nothing; after `unwatch()` nothing more is heard.
    await store.insert_task(task(2))
    assert await store.append_events("t0002", [NewEvent({"x": 1}, "k")])
    assert await store.append_events("t0002", [NewEvent({"x": 1}, "k")]) == []
    assert not await store.delete_session("s1")
    assert not await store.delete_service("svc")
    await store.save_service("flush", {})  # heard after all of the above, if they were
    await heard.wait_for(seen("service", "flush", None))
    assert len(heard.of("events", "t0002")) == 1
    assert len(heard.of("session", "s1")) == 3 and len(heard.of("service", "svc")) == 2
    unwatch()
    count = len(heard.changes)
    marker = ChangeRecorder()
    store.watch(marker)
    await store.save_service("after", {})
    await marker.wait_for(lambda c: c.key == "after")
    assert len(heard.changes) == count
    assert not [c for c in heard.changes if c.origin != me]
    assert store.shared is isinstance(store, PostgresStateStore)


async def test_leases_go_to_one_holder_until_released_or_expired(store: StateStore) -> None:
    assert await store.try_lease("retention", "a", ttl=30)
    assert not await store.try_lease("retention", "b", ttl=30)
    assert await store.try_lease("retention", "a", ttl=30)  # a renewal
    await store.release_lease("retention", "b")  # not b's to release
    assert not await store.try_lease("retention", "b", ttl=30)
    await store.release_lease("retention", "a")
    assert await store.try_lease("retention", "b", ttl=0.2)
    assert not await store.try_lease("retention", "a", ttl=30)
    # b does not renew: its lease runs out on the store's clock, then a may take it.
    await eventually(lambda: store.try_lease("retention", "a", ttl=30), timeout=5)
    assert not await store.try_lease("retention", "b", ttl=30)
    assert await store.try_lease("other", "b", ttl=30)  # leases are by name


async def test_replicas_are_live_until_their_beat_expires(store: StateStore) -> None:
    await store.beat("r1", ttl=30)
    await store.beat("r2", ttl=0.2)
    assert await store.live_replicas() == {"r1", "r2"}

    async def r2_expired() -> bool:
        return await store.live_replicas() == {"r1"}

    await eventually(r2_expired, timeout=5)
    await store.beat("r2", ttl=30)  # a beat brings it back
    assert await store.live_replicas() == {"r1", "r2"}
    await store.forget_replica("r1")
    assert await store.live_replicas() == {"r2"}


def test_what_a_user_can_configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_AGENTS_STATE_URL", raising=False)
    monkeypatch.delenv("LLAMA_AGENTS_STATE_PATH", raising=False)
    assert isinstance(open_state_store(None, persist=False), SqliteStateStore)
    assert not open_state_store(None, persist=False).durable
    assert open_state_store(None, persist=True).durable
    assert open_state_store(f"sqlite:///{tmp_path}/a.db", persist=True).path == f"{tmp_path}/a.db"
    assert open_state_store("sqlite:////abs/b.db", persist=True).path == "/abs/b.db"
    monkeypatch.setenv("LLAMA_AGENTS_STATE_URL", str(tmp_path / "env.db"))
    assert open_state_store(None, persist=False).path == str(tmp_path / "env.db")
    with pytest.raises(ConfigurationError, match="unsupported state store URL"):
        open_state_store("redis://localhost", persist=True)


def test_postgres_urls_name_the_schema_by_parameter_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLAMA_AGENTS_STATE_SCHEMA", raising=False)
    store = open_state_store(
        "postgresql://u:secret@db:5433/app?schema=prod&sslmode=disable", persist=True
    )
    assert isinstance(store, PostgresStateStore) and store.schema == "prod"
    assert store.url == "postgresql://u:secret@db:5433/app?sslmode=disable"
    assert "secret" not in repr(store)
    default = open_state_store("postgres://db/app", persist=True)
    assert isinstance(default, PostgresStateStore) and default.schema == "llama_agents"
    assert default.url == "postgres://db/app"
    monkeypatch.setenv("LLAMA_AGENTS_STATE_SCHEMA", "staging")
    assert open_state_store("postgresql://db/app", persist=True).schema == "staging"  # type: ignore[attr-defined]
    monkeypatch.setenv("LLAMA_AGENTS_STATE_URL", "postgresql://db/app?schema=envs")
    assert open_state_store(None, persist=True).schema == "envs"  # type: ignore[attr-defined]
    for bad in ("Prod", "a-b", "x;drop", "pg_temp", "s" * 49, '"q"'):
        with pytest.raises(ConfigurationError, match="invalid PostgreSQL schema name"):
            open_state_store(f"postgresql://db/app?schema={bad}", persist=True)


def test_a_postgres_url_without_asyncpg_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'llama-agents\[postgres\]'"):
        open_state_store("postgresql://db/app", persist=True)
