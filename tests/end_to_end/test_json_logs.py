"""`LLAMA_AGENTS_LOG_FORMAT=json` on a real system: a control plane and a service, each its
own process, on RabbitMQ with a URL that carries a password and with an API key. Every line
either writes is one JSON object; the lines logged while a task's messages are handled carry
its task id; neither the password nor the key appears anywhere.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llama_agents import AsyncLlamaAgentsClient, TaskStatus
from tests.support.helpers import DEADLINE
from tests.support.processes import CLI, ProcessGroup, free_port, offline_env

pytestmark = pytest.mark.rabbitmq

KEY = "json-logs-secret-key-5d1e9c"
TARGET = "tests/support/dead_letter_system.py"


@pytest.fixture
async def group() -> AsyncIterator[ProcessGroup]:
    processes = ProcessGroup()
    try:
        yield processes
    finally:
        await processes.close()


def _parsed(lines: list[str], process: str) -> list[dict[str, Any]]:
    entries = []
    for line in lines:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{process} wrote a line that is not JSON: {line!r}")
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    return entries


async def test_json_lines_carry_task_ids_and_no_secrets(
    amqp_url: str, exchange_name: str, tmp_path: Path, group: ProcessGroup
) -> None:
    assert ":guest@" in amqp_url or "@" in amqp_url, "the broker URL carries a password"
    password = amqp_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    broken = tmp_path / "broken"
    env = offline_env(
        {
            "LLAMA_AGENTS_AMQP_URL": amqp_url,
            "LLAMA_AGENTS_EXCHANGE": exchange_name,
            "LLAMA_AGENTS_CONTROL_PLANE_URL": url,
            "LLAMA_AGENTS_STATE_PATH": str(tmp_path / "cp.sqlite3"),
            "LLAMA_AGENTS_API_KEY": KEY,
            "LLAMA_AGENTS_LOG_FORMAT": "json",
            "LLAMA_AGENTS_TEST_BROKEN_FILE": str(broken),
        }
    )
    control_plane = await group.start(
        "control_plane",
        [
            CLI,
            "-v",
            "serve",
            "control-plane",
            "--orchestrator",
            f"{TARGET}:build_orchestrator",
            "--port",
            str(port),
        ],
        env,
        ready_marker="control plane ready",
    )
    service = await group.start(
        "service",
        [CLI, "-v", "serve", "service", f"{TARGET}:build_flaky", "--port", str(free_port())],
        env,
        ready_marker=" ready at",
    )

    async with AsyncLlamaAgentsClient(url, api_key=KEY) as client:
        broken.touch()
        failing = await client.create_task("fails", service="flaky")
        failed = await client.wait_for_result(failing, timeout=DEADLINE)
        assert failed.error is not None and "dead-lettered" in failed.error
        broken.unlink()
        working = await client.create_task("works", service="flaky")
        assert (await client.wait_for_result(working, timeout=DEADLINE)).result == "WORKS"
        assert (await client.get_task(working)).status is TaskStatus.COMPLETED

    await group.stop("service")
    await group.stop("control_plane")
    logs = {"control_plane": control_plane.lines, "service": service.lines}
    entries = {name: _parsed(lines, name) for name, lines in logs.items()}

    everything = "\n".join(line for lines in logs.values() for line in lines)
    assert KEY not in everything
    assert f":{password}@" not in everything
    # The service's careless line is there, its secrets masked.
    careless = [e for e in entries["service"] if e["logger"] == "tests.flaky"]
    assert careless and all(":***@" in e["message"] and KEY not in e["message"] for e in careless)

    # The lines logged while a task's messages were handled carry its task id.
    assert {e.get("task_id") for e in careless} == {failing, working}
    assert all(e.get("service") == "flaky" for e in careless)
    for name, parsed in entries.items():
        for entry in parsed:
            for task_id in (failing, working):
                if task_id in entry["message"]:
                    assert entry.get("task_id") == task_id, (name, entry)
    # The control plane logged the dead-lettered task's failure, tagged with it.
    failure = [
        e
        for e in entries["control_plane"]
        if e.get("task_id") == failing and e["level"] == "WARNING"
    ]
    assert failure, entries["control_plane"]
