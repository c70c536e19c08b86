"""Workflow runs across processes on RabbitMQ, every part its own process: a replica killed
while it holds a run, a run released while it waits and every process restarted before the
answer comes, a session whose second turn runs on another replica."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.helpers import DEADLINE
from tests.support.llm_server import (
    ChatRequest,
    RuleBook,
    ScriptedLLMServer,
    Text,
    message_text,
)
from tests.support.llm_server import scripted_llm_fixture as scripted_llm  # noqa: F401
from tests.support.processes import CLI, ProcessGroup, free_port, offline_env
from tests.support.streams import of_type, read_ndjson

pytestmark = pytest.mark.rabbitmq

ORCHESTRATOR = "tests/support/mp_system.py:build_orchestrator"
REVIEW = "tests/support/workflow_system.py:build_review"
CHAT = "tests/support/workflow_system.py:build_chat"
ANSWER = {"type": "HumanResponseEvent", "data": {"response": "yes"}}


class Mesh:
    """A control plane and service replicas, each a process, on the test's exchange."""

    def __init__(self, amqp_url: str, exchange: str, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ledger = tmp_path / "ledger.txt"
        self.extra = {
            "LLAMA_AGENTS_AMQP_URL": amqp_url,
            "LLAMA_AGENTS_EXCHANGE": exchange,
            "LLAMA_AGENTS_CONTROL_PLANE_URL": self.url,
            "LLAMA_AGENTS_STATE_PATH": str(tmp_path / "control_plane.sqlite3"),
            "LLAMA_AGENTS_TEST_LEDGER": str(self.ledger),
            **env,
        }
        self.group = ProcessGroup()
        self.service_ports: dict[str, int] = {}

    async def start_control_plane(self) -> None:
        argv = [CLI, "serve", "control-plane", "--orchestrator", ORCHESTRATOR]
        await self.group.start(
            "control_plane",
            [*argv, "--port", str(self.port)],
            offline_env(self.extra),
            ready_marker="control plane ready",
        )

    async def start_service(self, name: str, target: str) -> None:
        port = self.service_ports.setdefault(name, free_port())
        await self.group.start(
            name,
            [CLI, "serve", "service", target, "--port", str(port)],
            offline_env({**self.extra, "LLAMA_AGENTS_TEST_REPLICA": name}),
            ready_marker=" ready at",
        )

    async def replica_of(self, holder: str) -> str:
        """Which of our replica processes is the one at `holder` (a control address)."""
        async with httpx.AsyncClient() as http:
            for name, port in self.service_ports.items():
                if name not in self.group.procs:
                    continue
                status = (await http.get(f"http://127.0.0.1:{port}/")).json()
                if holder.endswith(status["replica_id"]):
                    return name
        raise AssertionError(f"no replica holds {holder}")

    async def service_status(self, name: str) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            reply = await http.get(f"http://127.0.0.1:{self.service_ports[name]}/")
            return dict(reply.json())

    def step_runs(self) -> Counter[tuple[str, str]]:
        if not self.ledger.exists():
            return Counter()
        return Counter(
            (replica, step)
            for replica, step in (line.split() for line in self.ledger.read_text().splitlines())
        )

    def steps(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for (_, step), n in self.step_runs().items():
            counts[step] += n
        return counts


@pytest.fixture
async def mesh(amqp_url: str, exchange_name: str, tmp_path: Path) -> AsyncIterator[Mesh]:
    from tests.support import broker

    running = Mesh(amqp_url, exchange_name, tmp_path)
    try:
        yield running
    finally:
        await running.group.close()
        await broker.delete_system(amqp_url, exchange_name)


async def wait_record(
    http: httpx.AsyncClient, task_id: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The task's record once `predicate` holds, checked again at each change the control
    plane pushes on `GET /events` (never on a timer)."""
    async with asyncio.timeout(DEADLINE * 2):
        while True:
            async with http.stream("GET", "/events") as changes:
                async for line in changes.aiter_lines():
                    if line.startswith(": connected") or (
                        line.startswith("data: ") and task_id in line
                    ):
                        record = dict((await http.get(f"/tasks/{task_id}")).json())
                        if predicate(record):
                            return record


def moved_from(record: dict[str, Any], held: dict[str, Any]) -> bool:
    holder = record["run"] and record["run"]["holder"]
    return waiting(record) and bool(holder) and holder != held["run"]["holder"]


def waiting(record: dict[str, Any]) -> bool:
    return record["status"] == "waiting_for_input"


async def test_a_run_resumes_on_another_replica_when_its_holder_is_killed(mesh: Mesh) -> None:
    await mesh.start_control_plane()
    await mesh.start_service("replica_1", REVIEW)
    await mesh.start_service("replica_2", REVIEW)
    async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as http:
        created = await http.post("/tasks", json={"input": "the outage", "service": "review"})
        task_id = created.json()["task_id"]
        held = await wait_record(http, task_id, lambda r: waiting(r) and r["run"]["holder"])
        holder = await mesh.replica_of(held["run"]["holder"])
        other = "replica_2" if holder == "replica_1" else "replica_1"
        assert mesh.step_runs() == {(holder, "draft"): 1, (holder, "ask"): 1}

        assert await mesh.group.kill(holder) == -9  # holding the run, its step unacknowledged

        moved = await wait_record(http, task_id, lambda r: moved_from(r, held))
        assert await mesh.replica_of(moved["run"]["holder"]) == other
        assert (await http.post(f"/tasks/{task_id}/events", json=ANSWER)).status_code == 202
        result = await http.get(f"/tasks/{task_id}/result", params={"wait": DEADLINE})
        assert result.json()["data"]["result"] == {
            "draft": "a note about the outage",
            "approved": True,
        }
    runs = mesh.step_runs()
    print(
        json.dumps(
            {"ledger": "kill_9_holder", "runs": {f"{r}:{s}": n for (r, s), n in runs.items()}}
        )
    )
    assert mesh.steps() == {"draft": 1, "ask": 1, "decide": 1}, "completed steps never ran again"
    assert runs[(other, "decide")] == 1


async def test_a_released_run_survives_a_restart_of_every_process(
    amqp_url: str, exchange_name: str, tmp_path: Path
) -> None:
    from tests.support import broker

    mesh = Mesh(amqp_url, exchange_name, tmp_path, LLAMA_AGENTS_TEST_IDLE_RELEASE="0.2")
    try:
        await mesh.start_control_plane()
        await mesh.start_service("replica_1", REVIEW)
        await mesh.start_service("replica_2", REVIEW)
        async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as http:
            created = await http.post("/tasks", json={"input": "a holiday", "service": "review"})
            task_id = created.json()["task_id"]
            released = await wait_record(
                http, task_id, lambda r: waiting(r) and r["run"]["released"]
            )
            assert released["run"]["holder"] is None
            for name in ("replica_1", "replica_2"):
                status = await mesh.service_status(name)
                assert status["runs"]["held"] == 0, "no replica holds the waiting run"
                assert status["messages"]["in_flight"] == 0, "and no delivery is unacknowledged"
            counts = await broker.queue_counts(amqp_url, f"{exchange_name}.review")
            assert counts is not None and counts[0] == 0, "nothing waits in the queue either"

        for name in ("replica_1", "replica_2", "control_plane"):
            assert await mesh.group.stop(name) == 0
        await mesh.start_control_plane()
        await mesh.start_service("replica_1", REVIEW)
        await mesh.start_service("replica_2", REVIEW)

        async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as http:
            assert (await http.get(f"/tasks/{task_id}")).json()["status"] == "waiting_for_input"
            assert (await http.post(f"/tasks/{task_id}/events", json=ANSWER)).status_code == 202
            result = await http.get(f"/tasks/{task_id}/result", params={"wait": DEADLINE})
            assert result.json()["data"]["result"]["approved"] is True
            events = await read_ndjson(http, task_id)
            assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
            assert events[-1]["data"]["status"] == "completed"
        assert mesh.steps() == {"draft": 1, "ask": 1, "decide": 1}
    finally:
        await mesh.group.close()
        await broker.delete_system(amqp_url, exchange_name)


def remembers_names(request: ChatRequest) -> Text:
    """Answers 'what is my name' from the chat history the agent sent, and nothing else."""
    said = [message_text(m) for m in request.messages if m.get("role") == "user"]
    last = said[-1] if said else ""
    if "what is my name" in last.lower():
        names = [s.split("My name is ", 1)[1].rstrip(".") for s in said if "My name is " in s]
        return Text(f"Your name is {names[0]}." if names else "I do not know your name.")
    return Text("Nice to meet you.")


async def test_a_sessions_second_turn_on_another_replica_remembers_the_first(
    amqp_url: str,
    exchange_name: str,
    tmp_path: Path,
    scripted_llm: ScriptedLLMServer,  # noqa: F811
) -> None:
    from tests.support import broker

    scripted_llm.respond = RuleBook(default=remembers_names)
    mesh = Mesh(amqp_url, exchange_name, tmp_path, LLAMA_AGENTS_TEST_LLM_BASE=scripted_llm.base_url)
    try:
        await mesh.start_control_plane()
        await mesh.start_service("chat_1", CHAT)
        async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as http:
            session = (await http.post("/sessions")).json()["session_id"]
            first = await http.post(
                "/tasks",
                json={"input": "My name is Ada.", "service": "chat", "session_id": session},
            )
            answer = await http.get(
                f"/tasks/{first.json()['task_id']}/result", params={"wait": DEADLINE}
            )
            assert answer.json()["result"] == "Nice to meet you."

            # The first replica goes; the second turn runs on a replica that never saw it.
            await mesh.start_service("chat_2", CHAT)
            assert await mesh.group.stop("chat_1") == 0
            second = await http.post(
                "/tasks",
                json={"input": "What is my name?", "service": "chat", "session_id": session},
            )
            answer = await http.get(
                f"/tasks/{second.json()['task_id']}/result", params={"wait": DEADLINE}
            )
            assert answer.json()["result"] == "Your name is Ada."
            turn = scripted_llm.requests[-1]
            texts = [message_text(m) for m in turn.messages]
            assert "My name is Ada." in texts and "Nice to meet you." in texts
            events = await read_ndjson(
                http, second.json()["task_id"], until=of_type("TaskFinished")
            )
            assert events[-1]["data"]["status"] == "completed"
    finally:
        await mesh.group.close()
        await broker.delete_system(amqp_url, exchange_name)
