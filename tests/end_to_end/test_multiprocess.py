"""The system as separate OS processes on RabbitMQ, under faults.

A control plane, two replicas of one agent service and one other agent service, each its
own process (`llama-agents serve ...`); 100 tasks through the SDK. Each test injects a fault
mid-run (SIGTERM or kill -9 a replica, kill -9 the control plane and start it again, stop
and start the broker) and prints its ledger: submitted, completed, lost, duplicates.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from llama_agents import (
    AsyncLlamaAgentsClient,
    TaskStatus,
)
from tests.support import broker
from tests.support.human_results import Results
from tests.support.processes import CLI, ProcessGroup, free_port, offline_env

pytestmark = [pytest.mark.timeout(300), pytest.mark.rabbitmq]

TASKS = 100
FAULT_AFTER = 30
SECRET = "The secret fact is: A baby llama is called a 'Cria'."
TARGETS = {
    "orchestrator": "tests/support/mp_system.py:build_orchestrator",
    "secret": "tests/support/mp_system.py:build_secret_agent",
    "dumb": "tests/support/mp_system.py:build_dumb_agent",
}


@dataclass
class Ledger:
    submitted: int
    completed: int
    lost: int
    duplicate_results: int
    step_runs: int
    steps_run_twice: int
    replicas: dict[str, int]

    def print(self, case: str) -> None:
        print(json.dumps({"ledger": case, **self.__dict__}))


class System:
    """The processes of one test's system, on the test's own exchange."""

    def __init__(self, amqp_url: str, exchange: str, tmp_path: Path) -> None:
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ledger_path = tmp_path / "ledger.txt"
        self.state_path = tmp_path / "control_plane.sqlite3"
        self.group = ProcessGroup()
        self.results = Results(amqp_url, exchange)
        self.service_ports: dict[str, int] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return offline_env(
            {
                "LLAMA_AGENTS_AMQP_URL": self.amqp_url,
                "LLAMA_AGENTS_EXCHANGE": self.exchange,
                "LLAMA_AGENTS_CONTROL_PLANE_URL": self.url,
                "LLAMA_AGENTS_STATE_PATH": str(self.state_path),
                "LLAMA_AGENTS_TEST_LEDGER": str(self.ledger_path),
                **extra,
            }
        )

    async def start_control_plane(self) -> None:
        await self.group.start(
            "control_plane",
            [
                CLI,
                "serve",
                "control-plane",
                "--orchestrator",
                TARGETS["orchestrator"],
                "--port",
                str(self.port),
            ],
            self.env(),
            ready_marker="control plane ready",
        )

    async def start_service(self, name: str, target: str) -> None:
        self.service_ports[name] = free_port()
        await self.group.start(
            name,
            [CLI, "serve", "service", target, "--port", str(self.service_ports[name])],
            self.env(LLAMA_AGENTS_TEST_REPLICA=name),
            ready_marker=" ready at",
        )

    async def up(self) -> None:
        await self.start_control_plane()
        await self.start_service("replica_1", TARGETS["secret"])
        await self.start_service("replica_2", TARGETS["secret"])
        await self.start_service("dumb", TARGETS["dumb"])
        await self.results.start()

    async def submit(self, count: int) -> list[str]:
        async with AsyncLlamaAgentsClient(self.url) as client:
            ids = await asyncio.gather(
                *(client.create_task("What is the secret fact?") for _ in range(count))
            )
        self.results.expected = set(ids)
        return list(ids)

    async def in_flight(self, name: str) -> int:
        """Messages the service is handling right now (its `GET /` counters)."""
        async with httpx.AsyncClient() as http:
            status = await http.get(f"http://127.0.0.1:{self.service_ports[name]}/")
        return int(status.json()["messages"]["in_flight"])

    async def wait_until_holding(self, name: str, after: int) -> None:
        """Wait for `after` results, then until the service `name` is handling a message.

        It is looked at as each result arrives: between two steps a replica may hold
        nothing for a moment (the control plane dispatches the next ones), so one look at
        one moment is not enough. Fails if it never holds one before the last results.
        """
        for seen in range(after, TASKS - FAULT_AFTER // 2):
            await self.results.wait_for(seen)
            if await self.in_flight(name) > 0:
                return
        raise AssertionError(f"{name} never held a task while results came in")

    def step_runs(self) -> list[tuple[str, str, str]]:
        if not self.ledger_path.exists():
            return []
        rows = [line.split() for line in self.ledger_path.read_text().splitlines() if line]
        return [(replica, task_id, step_id) for replica, task_id, step_id in rows]

    async def ledger(self, task_ids: list[str]) -> Ledger:
        async with AsyncLlamaAgentsClient(self.url) as client:
            tasks = {t.task_id: t for t in await client.list_tasks()}
        completed = [t for t in task_ids if tasks[t].status is TaskStatus.COMPLETED]
        runs = self.step_runs()
        per_step = Counter(step for _, _, step in runs)
        return Ledger(
            submitted=len(task_ids),
            completed=len(completed),
            lost=len(set(task_ids) - set(self.results.by_task)),
            duplicate_results=sum(n - 1 for n in self.results.by_task.values() if n > 1),
            step_runs=len(runs),
            steps_run_twice=sum(1 for n in per_step.values() if n > 1),
            replicas=dict(Counter(replica for replica, _, _ in runs)),
        )

    async def close(self) -> None:
        await self.results.close()
        await self.group.close()
        await broker.delete_system(self.amqp_url, self.exchange)


@pytest.fixture
async def system(amqp_url: str, exchange_name: str, tmp_path: Path) -> AsyncIterator[System]:
    running = System(amqp_url, exchange_name, tmp_path)
    try:
        await running.up()
        yield running
    finally:
        await running.close()


def assert_all_answered(system: System, task_ids: list[str]) -> None:
    assert set(system.results.by_task) == set(task_ids)
    wrong = {
        t: system.results.answers[t].error
        for t in task_ids
        if system.results.answers[t].result != SECRET
    }
    assert not wrong, wrong


async def test_replicas_share_the_work_and_sigterm_loses_nothing(system: System) -> None:
    task_ids = await system.submit(TASKS)
    await system.wait_until_holding("replica_1", after=FAULT_AFTER)  # stopped holding tasks
    assert await system.group.stop("replica_1") == 0, "SIGTERM: drains, then exits cleanly"
    await system.results.wait_for(TASKS)

    ledger = await system.ledger(task_ids)
    ledger.print("sigterm_replica")
    assert_all_answered(system, task_ids)
    assert (ledger.completed, ledger.lost, ledger.duplicate_results) == (TASKS, 0, 0)
    assert ledger.steps_run_twice == 0, "a drained replica hands nothing back half-done"
    assert ledger.replicas.get("replica_1", 0) > 0 and ledger.replicas.get("replica_2", 0) > 0


async def test_kill_9_replica_mid_run_loses_nothing(system: System) -> None:
    task_ids = await system.submit(TASKS)
    await system.wait_until_holding("replica_1", after=FAULT_AFTER)  # dies holding tasks
    await system.group.kill("replica_1")
    await system.results.wait_for(TASKS)

    ledger = await system.ledger(task_ids)
    ledger.print("kill_9_replica")
    assert_all_answered(system, task_ids)
    assert (ledger.completed, ledger.lost, ledger.duplicate_results) == (TASKS, 0, 0)
    assert ledger.replicas.get("replica_2", 0) > 0


async def test_kill_9_control_plane_and_restart(system: System) -> None:
    task_ids = await system.submit(TASKS)
    await system.results.wait_for(FAULT_AFTER)
    await system.group.kill("control_plane")
    killed_at = datetime.now(UTC)
    await system.start_control_plane()  # same state file, same queue
    await system.results.wait_for(TASKS)

    ledger = await system.ledger(task_ids)
    ledger.print("kill_9_control_plane")
    assert_all_answered(system, task_ids)
    assert (ledger.completed, ledger.lost) == (TASKS, 0)
    # A result the control plane published but could not mark before dying is sent again:
    # at least once. Consumers de-duplicate by task id; the ledger shows how often.
    assert ledger.duplicate_results <= FAULT_AFTER
    # Steps completed before the crash were never run again.
    runs = Counter(step for _, _, step in system.step_runs())
    async with AsyncLlamaAgentsClient(system.url) as client:
        records = [await client.get_task(task_id) for task_id in task_ids]
    done_before = [
        step.step_id
        for record in records
        for step in record.steps
        if step.completed_at is not None and step.completed_at < killed_at
    ]
    assert done_before, "the crash came mid-run"
    assert all(runs[step] == 1 for step in done_before)


@pytest.mark.broker_restart
async def test_broker_restart_mid_run(system: System, broker_control: None) -> None:
    task_ids = await system.submit(TASKS)
    await system.results.wait_for(FAULT_AFTER)
    await broker.stop_app()
    await broker.start_app()
    await system.results.wait_for(TASKS)  # every process reconnected by itself

    ledger = await system.ledger(task_ids)
    ledger.print("broker_restart")
    assert_all_answered(system, task_ids)
    assert (ledger.completed, ledger.lost) == (TASKS, 0)
