"""Control planes as replicas on PostgreSQL, every part its own OS process, under faults.

Two control planes on one PostgreSQL schema, two replicas of the secret-fact agent, the other
agent, and a load generator that submits round robin to both control planes (and to the
other when one does not answer). Each test injects a fault mid-run and prints its ledger:
submitted, completed, lost, duplicate_results (tasks with two final results in the store),
duplicate_deliveries (final results delivered twice on `human`), steps_rerun.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from llama_agents import AsyncLlamaAgentsClient, TaskStatus
from llama_agents.control_plane.event_log import TASK_FINISHED
from llama_agents.control_plane.state import open_state_store
from tests.support import broker
from tests.support.human_results import Results
from tests.support.postgres import PostgresSchemas, pg_ctlcluster
from tests.support.processes import CLI, ProcessGroup, free_port, offline_env


@pytest.fixture
def postgres_state_url(postgres: PostgresSchemas) -> str:
    """The state URL of this test's own PostgreSQL schema."""
    return f"{postgres.url}?schema={postgres.schema}"


pytestmark = [pytest.mark.timeout(300), pytest.mark.rabbitmq]

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
    duplicate_deliveries: int
    steps_rerun: int
    finished_by: dict[str, int]

    def print(self, case: str) -> None:
        counts = " ".join(f"{key}={value}" for key, value in self.__dict__.items())
        print(f"{case}: {counts}")
        print(json.dumps({"ledger": case, **self.__dict__}))


class Replicated:
    """The processes of one test: two control planes on PostgreSQL, services, a load."""

    def __init__(self, amqp_url: str, exchange: str, state_url: str, tmp_path: Path) -> None:
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.state_url = state_url
        self.ports = {"cp_1": free_port(), "cp_2": free_port()}
        self.ledger_path = tmp_path / "ledger.txt"
        self.submitted_path = tmp_path / "submitted.txt"
        self.group = ProcessGroup()
        self.results = Results(amqp_url, exchange)
        self.replica_ids: dict[str, str] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def env(self, **extra: str) -> dict[str, str]:
        return offline_env(
            {
                "LLAMA_AGENTS_AMQP_URL": self.amqp_url,
                "LLAMA_AGENTS_EXCHANGE": self.exchange,
                "LLAMA_AGENTS_STATE_URL": self.state_url,
                "LLAMA_AGENTS_REPLICA_INTERVAL": "0.5",
                "LLAMA_AGENTS_REPLICA_TTL": "2",
                # Services register through the control plane that the tests kill.
                "LLAMA_AGENTS_CONTROL_PLANE_URL": self.url("cp_1"),
                "LLAMA_AGENTS_TEST_LEDGER": str(self.ledger_path),
                "LLAMA_AGENTS_TEST_WORK_SECONDS": "0.02",
                **extra,
            }
        )

    async def start_control_plane(self, name: str) -> None:
        argv = [CLI, "serve", "control-plane", "--orchestrator", TARGETS["orchestrator"]]
        argv += ["--port", str(self.ports[name])]
        await self.group.start(name, argv, self.env(), ready_marker="control plane ready")
        async with AsyncLlamaAgentsClient(self.url(name)) as client:
            status = await client.status()
        self.replica_ids[name] = status["replica"]["id"]

    async def start_service(self, name: str, target: str) -> None:
        argv = [CLI, "serve", "service", target, "--port", str(free_port())]
        env = self.env(LLAMA_AGENTS_TEST_REPLICA=name)
        await self.group.start(name, argv, env, ready_marker=" ready at")

    async def up(self) -> None:
        await self.start_control_plane("cp_1")
        await self.start_control_plane("cp_2")
        await self.start_service("replica_1", TARGETS["secret"])
        await self.start_service("replica_2", TARGETS["secret"])
        await self.start_service("dumb", TARGETS["dumb"])
        await self.results.start()

    async def load(self, count: int, rate: float) -> None:
        """Start the load generator (its own process); returns once it submits."""
        argv = [sys.executable, "-m", "tests.support.load_generator"]
        argv += ["--urls", f"{self.url('cp_1')},{self.url('cp_2')}"]
        argv += ["--count", str(count), "--rate", str(rate), "--out", str(self.submitted_path)]
        await self.group.start("load", argv, self.env(), ready_marker="submitted")

    async def load_done(self) -> list[str]:
        await self.group.procs["load"].wait_for_line("load done", timeout=120)
        ids = self.submitted_path.read_text().split()
        self.results.expected = set(ids)
        return ids

    async def ledger(self, task_ids: list[str]) -> Ledger:
        store = open_state_store(self.state_url, persist=True)
        async with store:
            finished_by: Counter[str] = Counter()
            completed = duplicates = 0
            for task_id in task_ids:
                row = await store.load_task(task_id)
                assert row is not None, f"task {task_id} is not in the store"
                if row.status == TaskStatus.COMPLETED.value:
                    completed += 1
                events = await store.read_events(task_id)
                ends = [e for e in events if e.body.get("type") == TASK_FINISHED]
                duplicates += len(ends) > 1
                owner = row.body.get("handled_by")
                names = {v: k for k, v in self.replica_ids.items()}
                finished_by[names.get(owner, str(owner))] += 1
        runs = [line.split() for line in self.ledger_path.read_text().splitlines() if line]
        per_step = Counter(step for _, _, step in runs)
        return Ledger(
            submitted=len(task_ids),
            completed=completed,
            lost=len(set(task_ids) - set(self.results.by_task)),
            duplicate_results=duplicates,
            duplicate_deliveries=sum(n - 1 for n in self.results.by_task.values() if n > 1),
            steps_rerun=sum(1 for n in per_step.values() if n > 1),
            finished_by=dict(finished_by),
        )

    async def close(self) -> None:
        await self.results.close()
        await self.group.close()
        await broker.delete_system(self.amqp_url, self.exchange)


@pytest.fixture
async def system(
    amqp_url: str, exchange_name: str, postgres_state_url: str, tmp_path: Path
) -> AsyncIterator[Replicated]:
    running = Replicated(amqp_url, exchange_name, postgres_state_url, tmp_path)
    try:
        await running.up()
        yield running
    finally:
        await running.close()


def assert_answered(system: Replicated, task_ids: list[str]) -> None:
    wrong = {
        t: system.results.answers[t].error
        for t in task_ids
        if system.results.answers[t].result != SECRET
    }
    assert not wrong, wrong


async def test_kill_9_one_of_two_control_planes_loses_nothing(system: Replicated) -> None:
    tasks = 300
    await system.load(tasks, rate=60)
    await system.results.wait_for(tasks * 3 // 10)
    await system.group.kill("cp_1")
    killed_at = datetime.now().astimezone()
    task_ids = await system.load_done()
    await system.results.wait_for(len(task_ids), timeout=180)

    ledger = await system.ledger(task_ids)
    ledger.print("kill_9_control_plane_replica")
    assert (ledger.submitted, ledger.completed, ledger.lost) == (tasks, tasks, 0)
    assert ledger.duplicate_results == 0, "a task ended twice"
    assert_answered(system, task_ids)
    # Whatever finished after the kill finished on the survivor.
    async with AsyncLlamaAgentsClient(system.url("cp_2")) as client:
        records = [await client.get_task(task_id) for task_id in task_ids]
    late = [r for r in records if r.finished_at is not None and r.finished_at > killed_at]
    assert late, "the kill came mid-run"
    assert {r.handled_by for r in late} == {system.replica_ids["cp_2"]}


@pytest.mark.postgres_restart
async def test_postgresql_restarted_mid_run_loses_nothing(
    system: Replicated, postgres_control: None
) -> None:
    tasks = 150
    await system.load(tasks, rate=50)
    await system.results.wait_for(tasks * 3 // 10)
    await pg_ctlcluster("restart")
    task_ids = await system.load_done()
    await system.results.wait_for(len(task_ids), timeout=180)

    ledger = await system.ledger(task_ids)
    ledger.print("postgresql_restart")
    assert (ledger.submitted, ledger.completed, ledger.lost) == (tasks, tasks, 0)
    assert ledger.duplicate_results == 0, "a task ended twice"
    assert_answered(system, task_ids)
    # Both control planes came through it.
    for name in ("cp_1", "cp_2"):
        async with AsyncLlamaAgentsClient(system.url(name)) as client:
            assert (await client.status())["replica"]["id"] == system.replica_ids[name]
