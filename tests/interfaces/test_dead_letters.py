"""Dead letters as an operator's tool, on RabbitMQ: a poison message and a failing step end
in the dead-letter queue; `llama-agents dead-letters ...` (a real subprocess), the HTTP API
and the SDK list, show, replay and purge them; a replay after the cause is fixed completes
the task the dead letter had failed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from llama_agents import AsyncLlamaAgentsClient, ControlPlaneServer, TaskStatus
from llama_agents.control_plane import SqliteStateStore
from tests.conftest import QueueFactory
from tests.support.control_plane import serve, stop
from tests.support.dead_letter_system import Flaky, build_orchestrator
from tests.support.helpers import DEADLINE
from tests.support.processes import CLI

pytestmark = pytest.mark.rabbitmq

KEY = "dead-letter-test-key-7f3a"


@dataclass
class DeadLetterSystem:
    control_plane: ControlPlaneServer
    service: Flaky
    client: AsyncLlamaAgentsClient

    @property
    def url(self) -> str:
        return self.control_plane.url


@pytest.fixture
async def system(rabbitmq_factory: QueueFactory, tmp_path: Path) -> AsyncIterator[DeadLetterSystem]:
    control_plane = ControlPlaneServer(
        await rabbitmq_factory(max_attempts=2),
        build_orchestrator(),
        SqliteStateStore(tmp_path / "cp.db"),
        port=0,
        api_key=KEY,
    )
    serving = await serve(control_plane)
    service = Flaky(await rabbitmq_factory(max_attempts=2))
    consuming = await service.launch_local()
    await control_plane.register_service(service.service_definition)
    client = AsyncLlamaAgentsClient(control_plane.url, api_key=KEY)
    try:
        yield DeadLetterSystem(control_plane, service, client)
    finally:
        await client.aclose()
        consuming.cancel()
        await stop(control_plane, serving)


async def dead_letters_cli(url: str, *args: str) -> tuple[int, str, str]:
    """`llama-agents dead-letters <args>` as a real process, with the system's API key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_AGENTS_")}
    env.update(LLAMA_AGENTS_CONTROL_PLANE_URL=url, LLAMA_AGENTS_API_KEY=KEY)
    process = await asyncio.create_subprocess_exec(
        CLI,
        "dead-letters",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_poison_and_failing_step_are_listed_replayed_and_purged(
    system: DeadLetterSystem,
) -> None:
    control_plane, service, client = system.control_plane, system.service, system.client
    service.broken = True
    task_id = await client.create_task("hello", service="flaky")
    await service.message_queue.publish_raw(b"{not json", "flaky")

    failed = await control_plane.wait_for_task(task_id, timeout=DEADLINE)
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None and "dead-lettered" in failed.error
    await control_plane.manager.message_queue.fetch_dead_letters(
        remove=False, wait_for=2, timeout=DEADLINE
    )

    # list --json: both letters, nothing removed by reading them.
    code, out, err = await dead_letters_cli(system.url, "list", "--json")
    assert code == 0, err
    page = json.loads(out)
    assert page["count"] == 2
    by_reason = {("undecodable" in d["reason"]): d for d in page["dead_letters"]}
    poison, step = by_reason[True], by_reason[False]
    assert poison["body"] == "{not json" and poison["routing_key"] == "flaky"
    assert "inventory database is down" in step["reason"] and step["attempts"] == 2
    assert task_id in step["body"]
    assert (await client.list_dead_letters()).count == 2, "listing keeps every letter"

    # The routes need the key, like every route.
    async with httpx.AsyncClient(base_url=system.url) as anonymous:
        assert (await anonymous.get("/dead-letters")).status_code == 401
        assert (await anonymous.post("/dead-letters/purge")).status_code == 401

    # show, by a prefix of the id.
    code, out, err = await dead_letters_cli(system.url, "show", step["id"][:8])
    assert code == 0, err
    assert "Id:" in out and step["id"] in out and "Routing key: flaky" in out
    assert "inventory database is down" in out

    # Fix the cause, replay the step's letter: the task resumes and completes.
    service.broken = False
    code, out, err = await dead_letters_cli(system.url, "replay", step["id"])
    assert code == 0, err
    assert f"replayed {step['id']} to flaky" in out
    assert f"task {task_id} resumed" in out
    result = await client.wait_for_result(task_id, timeout=DEADLINE)
    assert result.error is None and result.result == "HELLO"
    assert (await client.get_task(task_id)).status is TaskStatus.COMPLETED
    assert (await client.list_dead_letters()).count == 1
    # Its log: the failure's end, the reopening, the completion. A stream read now skips the
    # undone end and runs to the completion (before, it stopped at the failure).
    rows = await control_plane.manager.store.read_events(task_id)
    logged = [r.body["type"] for r in rows]
    assert logged[-3:] == ["TaskFinished", "TaskReopened", "TaskFinished"], logged
    read = [e.type for e in await client.get_events(task_id)]
    assert read == [t for i, t in enumerate(logged) if i != len(logged) - 3], read
    streamed = [e async for e in client.stream_events(task_id)]
    assert [e.type for e in streamed][-2:] == ["TaskReopened", "TaskFinished"]
    assert "TaskFinished" not in [e.type for e in streamed][:-1]
    assert streamed[-1].data["status"] == "completed"

    # The poison letter is still there (a replay of one id takes only that one).
    [left] = (await client.list_dead_letters()).dead_letters
    assert left.id == poison["id"]
    assert (await client.get_dead_letter(poison["id"])).body == "{not json"

    # purge empties it.
    code, out, err = await dead_letters_cli(system.url, "purge", "--yes")
    assert code == 0, err
    assert "purged 1 dead letter(s)" in out
    assert await client.count_dead_letters() == 0
    assert (await client.list_dead_letters()).dead_letters == []


async def test_replay_all_by_reason_through_the_sdk(system: DeadLetterSystem) -> None:
    control_plane, service, client = system.control_plane, system.service, system.client
    service.broken = True
    ids = [await client.create_task(f"word {i}", service="flaky") for i in range(3)]
    await service.message_queue.publish_raw(b"poison", "flaky")
    for task_id in ids:
        assert (await control_plane.wait_for_task(task_id, timeout=DEADLINE)).status is (
            TaskStatus.FAILED
        )
    await control_plane.manager.message_queue.fetch_dead_letters(
        remove=False, wait_for=4, timeout=DEADLINE
    )

    service.broken = False
    report = await client.replay_dead_letters(all=True, reason="inventory database")
    assert len(report.replayed) == 3 and report.failed == []
    assert sorted(report.reopened_tasks) == sorted(ids)
    for i, task_id in enumerate(ids):
        result = await client.wait_for_result(task_id, timeout=DEADLINE)
        assert result.result == f"WORD {i}"
    [poison] = (await client.list_dead_letters()).dead_letters
    assert poison.body == "poison"


async def test_bad_requests_are_refused_before_anything_moves(system: DeadLetterSystem) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=system.url, headers=headers) as http:
        assert (await http.post("/dead-letters/replay", json={})).status_code == 422
        both = {"ids": ["abcd1234"], "all": True}
        assert (await http.post("/dead-letters/replay", json=both)).status_code == 422
        bad_id = {"ids": ["not-an-id"]}
        assert (await http.post("/dead-letters/replay", json=bad_id)).status_code == 422
        assert (await http.get("/dead-letters/zzzz")).status_code == 422
        assert (await http.get("/dead-letters/abcd1234")).status_code == 404
    code, _, err = await dead_letters_cli(system.url, "replay")
    assert code == 2 and "name the dead letters to replay" in err
