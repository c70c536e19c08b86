"""The PostgreSQL state store shared by several stores at once, as control-plane replicas
share it: fenced saves, gap-free concurrent appends, idempotent redeliveries, change notices
across stores and schemas, a resync after the LISTEN connection dies, migrations applied once,
and a server restart survived by the same store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llama_agents.control_plane.state import (
    ConcurrentUpdateError,
    NewEvent,
    PostgresStateStore,
    TaskRow,
)
from llama_agents.control_plane.state.postgres_pool import PostgresPool
from llama_agents.control_plane.state.postgres_schema import SCHEMA_VERSION, migrate
from llama_agents.errors import StateStoreUnavailableError
from tests.support.postgres import (
    ChangeRecorder,
    PostgresSchemas,
    StoreFactory,
    backend_pids,
    connect,
    pg_ctlcluster,
    terminate_backends,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def task(n: int, status: str = "running") -> TaskRow:
    at = T0 + timedelta(seconds=n)
    return TaskRow(task_id=f"t{n:04d}", status=status, created_at=at, updated_at=at, body={"n": n})


async def test_of_two_replicas_saving_one_version_exactly_one_wins(
    postgres_stores: StoreFactory,
) -> None:
    a, b = await postgres_stores(), await postgres_stores()
    await a.insert_task(task(1))
    read_by_a, read_by_b = await a.load_task("t0001"), await b.load_task("t0001")
    assert read_by_a is not None and read_by_b is not None
    read_by_a.body["decided"], read_by_b.body["decided"] = "a", "b"

    async def save(store: PostgresStateStore, row: TaskRow, who: str) -> str:
        await store.save_task(
            row, events=[NewEvent({"by": who}, f"decision-{who}")], checkpoint={"by": who}
        )
        return who

    outcomes = await asyncio.gather(
        save(a, read_by_a, "a"), save(b, read_by_b, "b"), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, str)]
    losers = [o for o in outcomes if isinstance(o, ConcurrentUpdateError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    stored = await b.load_task("t0001")
    assert stored is not None and stored.version == 2
    assert stored.body["decided"] == winners[0]
    # Nothing of the loser's transaction stayed: not its event, not its checkpoint.
    assert [e.body for e in await a.read_events("t0001")] == [{"by": winners[0]}]
    assert await a.load_checkpoint("t0001") == {"by": winners[0]}


async def test_twenty_appenders_on_two_replicas_number_200_events_without_gap(
    postgres_stores: StoreFactory,
) -> None:
    a, b = await postgres_stores(max_size=10), await postgres_stores(max_size=10)
    await a.insert_task(task(1))

    async def appender(n: int) -> list[int]:
        store = a if n % 2 else b
        numbered: list[int] = []
        for batch in range(5):  # 5 appends of 2 events each
            keys = [f"a{n}-{batch}-{i}" for i in range(2)]
            appended = await store.append_events(
                "t0001", [NewEvent({"by": n, "key": k}, k) for k in keys]
            )
            assert [e.body["key"] for e in appended] == keys  # in order, none skipped
            numbered += [e.sequence for e in appended]
        return numbered

    handed_out = [s for numbers in await asyncio.gather(*map(appender, range(20))) for s in numbers]
    assert sorted(handed_out) == list(range(1, 201))
    stored = await b.read_events("t0001", limit=1000)
    assert [e.sequence for e in stored] == list(range(1, 201))
    assert len({e.body["key"] for e in stored}) == 200
    assert await a.last_sequence("t0001") == await b.last_sequence("t0001") == 200
    # Each appender's own events kept their order in the log.
    for n in range(20):
        mine = [e.body["key"] for e in stored if e.body["by"] == n]
        assert mine == [f"a{n}-{batch}-{i}" for batch in range(5) for i in range(2)]


async def test_redelivered_events_are_appended_once_whichever_replica_gets_them(
    postgres_stores: StoreFactory,
) -> None:
    a, b = await postgres_stores(), await postgres_stores()
    await a.insert_task(task(1))

    async def deliver(store: PostgresStateStore, key: str) -> list[int]:
        appended = await store.append_events("t0001", [NewEvent({"key": key}, key)])
        return [e.sequence for e in appended]

    # Every message delivered twice, to both replicas at once.
    keys = [f"m{n}" for n in range(40)]
    results = await asyncio.gather(*(deliver(s, k) for k in keys for s in (a, b)))
    assert sorted(s for r in results for s in r) == list(range(1, 41))
    events = await a.read_events("t0001")
    assert sorted(e.body["key"] for e in events) == sorted(keys)
    # A batch redelivered with one new event appends only that one, numbered next.
    again = await b.append_events(
        "t0001", [NewEvent({"key": "m3"}, "m3"), NewEvent({"key": "new"}, "new")]
    )
    assert [(e.sequence, e.body["key"]) for e in again] == [(41, "new")]


async def test_a_replica_hears_the_others_writes_with_versions_and_origins(
    postgres_stores: StoreFactory,
) -> None:
    a, b = await postgres_stores(), await postgres_stores()
    heard_by_a, heard_by_b = ChangeRecorder(), ChangeRecorder()
    a.watch(heard_by_a)
    b.watch(heard_by_b)
    row = task(1)
    await a.insert_task(row)
    await a.save_task(row, events=[NewEvent({"x": 1})])
    change = await heard_by_b.wait_for(lambda c: c.kind == "task" and c.version == 2)
    assert (change.key, change.origin) == ("t0001", a.store_id)
    events = await heard_by_b.wait_for(lambda c: c.kind == "events")
    assert (events.key, events.version, events.origin) == ("t0001", 1, a.store_id)
    # The writer hears its own write too, marked as its own.
    own = await heard_by_a.wait_for(lambda c: c.kind == "task" and c.version == 2)
    assert own.origin == a.store_id
    await b.save_service("svc", {"service_name": "svc"})
    service = await heard_by_a.wait_for(lambda c: c.kind == "service")
    assert (service.key, service.origin) == ("svc", b.store_id)
    assert heard_by_b.of("task", "t0001")[0].version == 1  # the insert came first


async def test_a_lost_listen_connection_comes_back_and_says_resync(
    postgres_stores: StoreFactory,
) -> None:
    a, b = await postgres_stores(), await postgres_stores()
    heard = ChangeRecorder()
    b.watch(heard)
    [before] = await backend_pids(b.listen_application_name)
    assert await terminate_backends(b.listen_application_name) == 1
    resync = await heard.wait_for(lambda c: c.kind == "resync")
    assert (resync.key, resync.version, resync.origin) == ("", None, b.store_id)
    [after] = await backend_pids(b.listen_application_name)
    assert after != before
    # It listens again: a's next write is heard.
    await a.insert_task(task(7))
    await heard.wait_for(lambda c: c.kind == "task" and c.key == "t0007")
    # Its pooled connections killed too: the next call opens new ones.
    assert await terminate_backends(b.application_name) >= 1
    assert await b.load_task("t0007") is not None


async def test_two_stores_opening_together_apply_each_migration_once(
    postgres: PostgresSchemas, postgres_stores: StoreFactory
) -> None:
    fresh = postgres.new()
    connections = [await connect(postgres.url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c, fresh) for c in connections))
    finally:
        for connection in connections:
            await connection.close()
    every = list(range(1, SCHEMA_VERSION + 1))
    assert sorted(applied, key=len) == [[], [], [], every]
    # And stores opening together on another fresh schema both come up.
    other = postgres.new()
    a, b = await asyncio.gather(postgres_stores(schema=other), postgres_stores(schema=other))
    await a.insert_task(task(1))
    assert await b.load_task("t0001") is not None
    check = await connect(postgres.url)
    try:
        rows = await check.fetch(f'SELECT version FROM "{other}".schema_migrations ORDER BY 1')
    finally:
        await check.close()
    assert [r[0] for r in rows] == every


async def test_systems_in_two_schemas_do_not_hear_each_other(
    postgres: PostgresSchemas, postgres_stores: StoreFactory
) -> None:
    first = await postgres_stores()
    first_replica = await postgres_stores()
    second = await postgres_stores(schema=postgres.new())
    heard_by_second, heard_by_replica = ChangeRecorder(), ChangeRecorder()
    second.watch(heard_by_second)
    first_replica.watch(heard_by_replica)
    await first.insert_task(task(1))
    await heard_by_replica.wait_for(lambda c: c.key == "t0001")
    await second.insert_task(task(2))
    # Notices arrive in commit order: once the second hears its own, it would have heard
    # the first's.
    await heard_by_second.wait_for(lambda c: c.key == "t0002")
    assert [c.key for c in heard_by_second.changes] == ["t0002"]
    assert await second.load_task("t0001") is None


async def _no_setup(_connection: Any) -> None:
    return None


async def test_a_call_whose_connection_breaks_is_retried_once_where_that_is_safe(
    postgres: PostgresSchemas,
) -> None:
    """The connection is really cut (the server ends the call's own backend) on the first
    attempt: a read and a transaction that had not committed run again; a write that may
    have been applied is not retried, and says the store is unavailable."""
    table = f'"{postgres.schema}".probe'
    admin = await connect(postgres.url)
    await admin.execute(f'CREATE SCHEMA "{postgres.schema}"; CREATE TABLE {table} (n int)')
    pool = PostgresPool(
        postgres.url, min_size=1, max_size=2, application_name="retry-test", init=_no_setup
    )
    await pool.open()
    attempts: list[int] = []

    async def cut_first(c: Any, statement: str) -> Any:
        attempts.append(len(attempts) + 1)
        result = await c.fetchval(statement, len(attempts))
        if len(attempts) == 1:
            await c.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return result

    try:
        read = await pool.run(lambda c: cut_first(c, "SELECT $1::int"), idempotent=True)
        assert (read, attempts) == (2, [1, 2])
        attempts.clear()
        inserted = await pool.transaction(
            lambda c: cut_first(c, f"INSERT INTO {table} VALUES ($1) RETURNING n")
        )
        assert inserted == 2 and attempts == [1, 2]
        # The first attempt's row went with its transaction.
        assert [r[0] for r in await admin.fetch(f"SELECT n FROM {table}")] == [2]
        attempts.clear()
        with pytest.raises(StateStoreUnavailableError, match="unavailable"):
            await pool.run(
                lambda c: cut_first(c, f"INSERT INTO {table} VALUES ($1) RETURNING n"),
                idempotent=False,
            )
        assert attempts == [1]
    finally:
        await pool.close()
        await admin.close()


@pytest.mark.postgres_restart
async def test_a_server_restart_fails_calls_clearly_then_the_same_store_works(
    postgres_stores: StoreFactory, postgres_control: None
) -> None:
    store = await postgres_stores()
    heard = ChangeRecorder()
    store.watch(heard)
    row = task(1)
    await store.insert_task(row)
    await store.save_task(row, events=[NewEvent({"x": 1}, "x1")], checkpoint={"c": 1})
    await pg_ctlcluster("stop", "-m", "fast")
    try:
        with pytest.raises(StateStoreUnavailableError, match="unavailable"):
            await store.load_task("t0001")
        with pytest.raises(StateStoreUnavailableError):
            await store.save_task(row, events=[NewEvent({"x": 2}, "x2")])
        with pytest.raises(StateStoreUnavailableError):
            await store.insert_task(task(2))
    finally:
        await pg_ctlcluster("start")
    # The same instance, no reopening: what was committed is there, new writes work.
    stored = await store.load_task("t0001")
    assert stored is not None and stored.version == 2
    assert [e.body for e in await store.read_events("t0001")] == [{"x": 1}]
    assert await store.load_checkpoint("t0001") == {"c": 1}
    await store.save_task(row, events=[NewEvent({"x": 2}, "x2")])
    assert await store.last_sequence("t0001") == 2 and row.version == 3
    assert await store.insert_task(task(2))
    # Its watchers were told to resync (notices sent meanwhile may be lost), and hear again.
    await heard.wait_for(lambda c: c.kind == "resync")
    await store.insert_task(task(3))
    await heard.wait_for(lambda c: c.key == "t0003")
