"""The registry does not show the dead as alive (issue 9, item 18): a service process
(`llama-agents serve service`) stopped with SIGTERM deregisters once its last replica is gone;
`GET /services` says which services something consumes right now (`consumers`, `live`),
also after the control plane restarted. Services run as their own processes, on RabbitMQ."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_agents.message_queues.rabbitmq.topology import queue_name
from tests.conftest import QueueFactory
from tests.support import broker
from tests.support.hardening import broker_consumers, served
from tests.support.processes import CLI, ProcessGroup, free_port, offline_env

pytestmark = pytest.mark.rabbitmq

ECHO = "tests/support/hardening.py:build_echo"


class Replicas:
    """Service replicas, each `llama-agents serve service` in its own process."""

    def __init__(self, amqp_url: str, exchange: str) -> None:
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.group = ProcessGroup()
        self.control_plane_url = ""

    async def start(self, replica: str, service: str) -> None:
        env = offline_env(
            {
                "LLAMA_AGENTS_AMQP_URL": self.amqp_url,
                "LLAMA_AGENTS_EXCHANGE": self.exchange,
                "LLAMA_AGENTS_CONTROL_PLANE_URL": self.control_plane_url,
                "LLAMA_AGENTS_TEST_SERVICE": service,
            }
        )
        argv = [CLI, "serve", "service", ECHO, "--port", str(free_port())]
        await self.group.start(replica, argv, env, ready_marker=" ready at")

    async def consumers(self, service: str, expected: int) -> None:
        await broker_consumers(self.amqp_url, queue_name(self.exchange, service), expected)


@pytest.fixture
async def replicas(amqp_url: str, exchange_name: str) -> AsyncIterator[Replicas]:
    group = Replicas(amqp_url, exchange_name)
    try:
        yield group
    finally:
        await group.group.close()
        await broker.delete_system(amqp_url, exchange_name)


async def listed(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await http.get("/services")
    assert response.status_code == 200, response.text
    return {s["service_name"]: s for s in response.json()}


async def test_a_service_stopped_with_sigterm_deregisters_when_its_last_replica_goes(
    rabbitmq_factory: QueueFactory, replicas: Replicas, tmp_path: Path
) -> None:
    async with served(await rabbitmq_factory(), tmp_path / "cp.sqlite3") as system:
        replicas.control_plane_url = system.url
        await replicas.start("echo_1", "echo")
        await replicas.start("echo_2", "echo")
        await replicas.consumers("echo", 2)
        assert list(await listed(system.http)) == ["echo"]

        assert await replicas.group.stop("echo_1", signal.SIGTERM) == 0
        assert list(await listed(system.http)) == ["echo"], "the other replica keeps it"

        assert await replicas.group.stop("echo_2", signal.SIGTERM) == 0
        assert await listed(system.http) == {}, "its last replica took it off the registry"


async def test_the_registry_tells_live_services_from_dead_ones_also_after_a_restart(
    rabbitmq_factory: QueueFactory, replicas: Replicas, tmp_path: Path
) -> None:
    path = tmp_path / "cp.sqlite3"
    async with served(await rabbitmq_factory(), path) as system:
        replicas.control_plane_url = system.url
        await replicas.start("alive", "alive")
        await replicas.start("dead", "dead")
        await replicas.consumers("alive", 1)
        assert await replicas.group.kill("dead") == -9  # no chance to deregister
        await replicas.consumers("dead", 0)

        services = await listed(system.http)
        assert (services["alive"]["live"], services["alive"]["consumers"]) == (True, 1)
        assert (services["dead"]["live"], services["dead"]["consumers"]) == (False, 0)

    async with served(await rabbitmq_factory(), path) as restarted:
        services = await listed(restarted.http)
        assert (services["alive"]["live"], services["alive"]["consumers"]) == (True, 1)
        assert (services["dead"]["live"], services["dead"]["consumers"]) == (False, 0)
