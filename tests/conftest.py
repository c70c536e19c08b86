"""Shared fixtures: a real RabbitMQ broker, per-test exchange names, queues of both kinds.

Every test that needs the broker carries the `rabbitmq` marker (the RabbitMQ case of
`queue_factory` too), so `pytest -m "not rabbitmq"` runs with no broker at all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aio_pika
import pytest

from llama_agents import BaseMessageQueue, RabbitMQMessageQueue, SimpleMessageQueue
from tests.support.run_lock import RunLock, lock_paths

TEST_URL_ENV = "LLAMA_AGENTS_TEST_AMQP_URL"
DEFAULT_TEST_URL = "amqp://guest:guest@localhost:5672/"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


async def _answers(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=3)
    except Exception:
        return False
    await connection.close()
    return True


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


#: Fixtures that reach the real broker: a test using one must be marked `rabbitmq`.
BROKER_FIXTURES = frozenset({"amqp_url", "rabbitmq_factory", "broker_control"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run tests that reach the broker through a fixture without the `rabbitmq`
    marker: `pytest -m "not rabbitmq"` must need no broker at all."""
    unmarked = [
        item.nodeid
        for item in items
        if BROKER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("rabbitmq") is None
    ]
    if unmarked:
        listed = "\n  ".join(unmarked)
        raise pytest.UsageError(
            f"these tests use the broker but are not marked rabbitmq:\n  {listed}"
        )


_RUN_LOCK = pytest.StashKey[RunLock]()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`pytest -n 2`): the controller names the run, so its workers
    share one lock; each worker opens it (see `tests/support/run_lock.py`)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[_RUN_LOCK] = RunLock(workerinput["testrunuid"])
    elif getattr(config.option, "testrunuid", "") is None:
        config.option.testrunuid = uuid.uuid4().hex


def pytest_unconfigure(config: pytest.Config) -> None:
    lock = config.stash.get(_RUN_LOCK, None)
    run_id = getattr(config.option, "testrunuid", None)
    if lock is not None:
        lock.close()
    elif run_id and getattr(config, "workerinput", None) is None:
        for path in lock_paths(run_id):  # the controller: its workers are done
            path.unlink(missing_ok=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A test that stops the broker or the database runs while no other worker runs one."""
    lock = item.config.stash.get(_RUN_LOCK, None)
    if lock is None:
        yield
        return
    with lock.held(exclusive=lock.is_exclusive(item)):
        yield


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A broker URL: the configured one, the local one, or a testcontainers RabbitMQ.

    With none of them, broker tests skip locally and fail in CI (`CI=true`).
    """
    url = os.environ.get(TEST_URL_ENV, DEFAULT_TEST_URL)
    # Run the probe in a thread: this fixture may be resolved from inside a running loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answers = pool.submit(asyncio.run, _answers(url)).result()
    if answers:
        yield url
        return
    if _docker_available():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3-management") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(container.port)
            yield f"amqp://guest:guest@{host}:{port}/"
        return
    message = f"no RabbitMQ broker answers at {url} and no Docker engine to start one"
    if _in_ci():
        pytest.fail(f"{message} (CI=true: broker tests must run)", pytrace=False)
    pytest.skip(message)


#: Every exchange this session handed out: what their systems left is deleted at its end.
_EXCHANGES: set[str] = set()


@pytest.fixture
def exchange_name() -> str:
    """A fresh exchange per test, so nothing leaks between tests."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    _EXCHANGES.add(name)
    return name


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete what this session's systems left on the broker (results nobody read wait in
    `human` queues; processes declare queues no test object knows of). Only this session's
    exchanges: another session on the same broker keeps its own."""
    if not _EXCHANGES:
        return
    from tests.support import broker

    async def tidy() -> None:
        if not await broker.available():
            return
        url = os.environ.get(TEST_URL_ENV, DEFAULT_TEST_URL)
        await broker.delete_systems(url, _EXCHANGES)

    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, tidy()).result(timeout=300)
    except Exception as exc:  # never fail a run for its tidying
        print(f"\nbroker tidy after the tests failed: {exc!r}")


QueueFactory = Callable[..., Awaitable[BaseMessageQueue]]


class _Made:
    """Queues a factory made, closed (and cleaned up) when the test ends."""

    def __init__(self) -> None:
        self.queues: list[BaseMessageQueue] = []

    async def close_all(self) -> None:
        leftovers: set[str] = set()
        for queue in self.queues:
            if isinstance(queue, RabbitMQMessageQueue):
                leftovers |= queue.declared_queues
            try:
                await asyncio.wait_for(queue.cleanup(), 20)
            finally:
                await queue.close()
        rabbit = [q for q in self.queues if isinstance(q, RabbitMQMessageQueue)]
        if rabbit:
            # cleanup() leaves queues that still hold messages (it never deletes messages);
            # this test's exchange is its own, so whatever it declared goes now.
            await _delete_everything(rabbit[0].url, rabbit[0].exchange_name, leftovers)


async def _delete_everything(url: str, exchange: str, queues: set[str]) -> None:
    try:
        connection = await aio_pika.connect(url, timeout=5)
    except Exception:
        return  # the broker is down (a fault test): nothing to tidy here
    async with connection:
        channel = await connection.channel()
        for name in sorted(queues):
            if name.startswith(f"{exchange}."):
                await channel.queue_delete(name)
        await channel.exchange_delete(exchange)


def _rabbitmq_maker(url: str, exchange: str, made: _Made) -> QueueFactory:
    async def make(**kwargs: Any) -> RabbitMQMessageQueue:
        kwargs.setdefault("reconnect_interval", 0.2)
        kwargs.setdefault("max_reconnect_interval", 1.0)
        queue = RabbitMQMessageQueue(url=url, exchange_name=exchange, **kwargs)
        made.queues.append(queue)
        return queue

    return make


def _simple_maker(made: _Made) -> QueueFactory:
    async def make(**kwargs: Any) -> SimpleMessageQueue:
        shared = {"prefetch", "max_attempts", "drain_timeout"}
        kwargs = {k: v for k, v in kwargs.items() if k in shared}
        queue = SimpleMessageQueue(**kwargs)
        made.queues.append(queue)
        return queue

    return make


@pytest.fixture
async def rabbitmq_factory(amqp_url: str, exchange_name: str) -> AsyncIterator[QueueFactory]:
    """Makes RabbitMQ queues on this test's exchange; cleans them up afterwards."""
    made = _Made()
    yield _rabbitmq_maker(amqp_url, exchange_name, made)
    await made.close_all()


@pytest.fixture(params=["simple", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def queue_factory(
    request: pytest.FixtureRequest, exchange_name: str
) -> AsyncIterator[QueueFactory]:
    """Makes queues of one kind; the behaviour suite runs once per kind."""
    made = _Made()
    if request.param == "rabbitmq":
        yield _rabbitmq_maker(request.getfixturevalue("amqp_url"), exchange_name, made)
    else:
        yield _simple_maker(made)
    await made.close_all()


@pytest.fixture
async def broker_control(amqp_url: str) -> AsyncIterator[None]:
    """For tests that stop, restart or cut the broker: the local node must be controllable.

    rabbitmqctl addresses `LLAMA_AGENTS_TEST_RABBITMQ_NODE` if set (pair it with
    `LLAMA_AGENTS_TEST_AMQP_URL` to run fault tests on a private node), else its default
    node. Whatever the test does, the broker is running again when it ends.
    """
    from tests.support import broker

    if not await broker.available():
        message = "rabbitmqctl cannot control the broker on this machine"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: fault tests must run)", pytrace=False)
        pytest.skip(message)
    try:
        yield
    finally:
        await broker.ensure_running()


from tests.support.llm_server import scripted_llm_fixture  # noqa: E402, F401  (the `scripted_llm` fixture)
from tests.support.postgres import (  # noqa: E402, F401  (the `postgres*` fixtures)
    postgres_control_fixture,
    postgres_fixture,
    postgres_stores_fixture,
)
