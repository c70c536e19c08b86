"""A real PostgreSQL for tests: each test its own schema (`t_<random>`), dropped after it.

The server is `LLAMA_AGENTS_TEST_POSTGRES_URL`, else the local one. Where it does not answer,
PostgreSQL tests skip locally and fail in CI (`CI=true`). Fault tests restart the local
cluster with `pg_ctlcluster` (`LLAMA_AGENTS_TEST_POSTGRES_CLUSTER`, default `15 main`) and
always leave it running.

Also here: `ChangeRecorder`, which records what a store's `watch()` hears and lets a test await
a change with a deadline, and `eventually()`, for a condition only time makes true (a lease
expiring on the database's clock), checked until a deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from llama_agents.control_plane.state import PostgresStateStore, StoreChange

TEST_URL_ENV = "LLAMA_AGENTS_TEST_POSTGRES_URL"
DEFAULT_TEST_URL = "postgresql://postgres@127.0.0.1:5432/test"
CLUSTER_ENV = "LLAMA_AGENTS_TEST_POSTGRES_CLUSTER"
DEADLINE = 15.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def server_url() -> str:
    return os.environ.get(TEST_URL_ENV, DEFAULT_TEST_URL)


async def connect(url: str | None = None) -> Any:
    """A plain asyncpg connection to the test server (for the test's own queries)."""
    import asyncpg  # type: ignore[import-untyped]

    return await asyncpg.connect(url or server_url(), timeout=5)


async def answers(url: str) -> bool:
    try:
        connection = await connect(url)
    except Exception:
        return False
    await connection.close()
    return True


def _run(coro: Awaitable[Any]) -> Any:
    """Run a coroutine to completion from sync code, even inside a running loop."""

    async def wrapped() -> Any:
        return await coro

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wrapped()).result()


async def drop_schemas(url: str, schemas: list[str]) -> None:
    connection = await connect(url)
    try:
        for schema in schemas:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


class PostgresSchemas:
    """The test's schemas on the test server; every one it names is dropped after it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.names: list[str] = []
        self.schema = self.new()

    def new(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return name


@pytest.fixture(name="postgres")
def postgres_fixture() -> Iterator[PostgresSchemas]:
    """The test server and a fresh schema for this test (`.schema`; `.new()` for more)."""
    url = server_url()
    if not _run(answers(url)):
        message = f"no PostgreSQL answers at {url}"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    schemas = PostgresSchemas(url)
    try:
        yield schemas
    finally:
        _run(drop_schemas(url, schemas.names))


StoreFactory = Callable[..., Awaitable[PostgresStateStore]]


@pytest.fixture(name="postgres_stores")
async def postgres_stores_fixture(postgres: PostgresSchemas) -> AsyncIterator[StoreFactory]:
    """Makes opened stores on this test's schema (or another: `schema=`); closes them after."""
    made: list[PostgresStateStore] = []

    async def make(schema: str | None = None, **kwargs: Any) -> PostgresStateStore:
        store = PostgresStateStore(postgres.url, schema=schema or postgres.schema, **kwargs)
        made.append(store)
        await store.open()
        return store

    yield make
    for store in made:
        await store.close()


async def backend_pids(application_name: str) -> list[int]:
    """The server processes of connections calling themselves `application_name`."""
    connection = await connect()
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
    finally:
        await connection.close()
    return [int(r[0]) for r in rows]


async def terminate_backends(application_name: str) -> int:
    """Kill those connections from the server side (as a crash or a proxy would)."""
    connection = await connect()
    try:
        killed = await connection.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = $1) AS t",
            application_name,
        )
    finally:
        await connection.close()
    return int(killed)


class ChangeRecorder:
    """Collects the changes a store's watchers hear; `wait_for` awaits one with a deadline."""

    def __init__(self) -> None:
        self.changes: list[StoreChange] = []
        self._arrived = asyncio.Event()

    def __call__(self, change: StoreChange) -> None:
        self.changes.append(change)
        self._arrived.set()

    def of(self, kind: str, key: str | None = None) -> list[StoreChange]:
        return [c for c in self.changes if c.kind == kind and (key is None or c.key == key)]

    async def wait_for(
        self, predicate: Callable[[StoreChange], bool], timeout: float = DEADLINE
    ) -> StoreChange:
        async with asyncio.timeout(timeout):
            while True:
                for change in self.changes:
                    if predicate(change):
                        return change
                self._arrived.clear()
                await self._arrived.wait()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = DEADLINE, pause: float = 0.02
) -> None:
    """Until `check()` holds, within `timeout`: for what only time makes true (an expiry on
    the database's clock), where there is no event to await."""
    async with asyncio.timeout(timeout):
        # Only the clock makes it true: nothing to await but time.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(pause)


# -- restarting the server (fault tests) --------------------------------------------------


def _cluster() -> list[str]:
    return os.environ.get(CLUSTER_ENV, "15 main").split()


async def pg_ctlcluster(action: str, *options: str, timeout: float = 60.0) -> str:
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster",
        *_cluster(),
        action,
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster {action}: {err.decode().strip()}")
    return out.decode()


async def cluster_running() -> bool:
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster",
        *_cluster(),
        "status",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait() == 0  # 3: not running


async def ensure_running() -> None:
    if not await cluster_running():
        await pg_ctlcluster("start")


@pytest.fixture(name="postgres_control")
async def postgres_control_fixture(postgres: PostgresSchemas) -> AsyncIterator[None]:
    """For tests that stop or restart the local cluster: it runs again when they end."""
    if shutil.which("pg_ctlcluster") is None or not await cluster_running():
        message = "pg_ctlcluster cannot control the PostgreSQL cluster on this machine"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: fault tests must run)", pytrace=False)
        pytest.skip(message)
    try:
        yield
    finally:
        await ensure_running()
