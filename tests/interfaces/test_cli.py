"""`llama-agents tasks ...` and `llama-agents services ...` against a served control plane.

Commands run through click's `CliRunner` in a worker thread (they block on HTTP while the
control plane is served by this test's event loop), and once as a real subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from llama_agents import AsyncLlamaAgentsClient, ServiceDefinition, TaskResult, TaskStatus
from llama_agents.console import main
from llama_agents.control_plane.models import TaskRecord, TaskSummary
from tests.support.helpers import DEADLINE
from tests.support.systems import UNREACHABLE, System, is_long_poll, served_system

CLI = Path(sys.executable).parent / "llama-agents"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_AGENTS_API_KEY", raising=False)
    monkeypatch.delenv("LLAMA_AGENTS_CONTROL_PLANE_URL", raising=False)


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    async with served_system(tmp_path) as served:
        yield served


async def run(
    system: System | None, *args: str, env: Mapping[str, str | None] | None = None
) -> Result:
    """`llama-agents <args>` in a thread, pointed at `system` through the environment."""
    environment = dict(env or {})
    if system is not None:
        environment.setdefault("LLAMA_AGENTS_CONTROL_PLANE_URL", system.url)
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, main, list(args), env=environment, prog_name="llama-agents"
    )


def one_error_line(result: Result) -> str:
    """The single `Error: ...` line a failing command prints, with no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


async def test_every_command_has_help() -> None:
    for command in (
        ["tasks"],
        ["tasks", "create"],
        ["tasks", "get"],
        ["tasks", "result"],
        ["tasks", "list"],
        ["tasks", "cancel"],
        ["services"],
        ["services", "list"],
        ["services", "get"],
    ):
        result = await run(None, *command, "--help")
        assert result.exit_code == 0, result.output
        usage, _, rest = result.stdout.partition("\n\n")
        assert usage.startswith("Usage: llama-agents " + " ".join(command))
        assert rest.strip().splitlines()[0].strip()  # a one-line description
        if len(command) == 2:
            assert "--control-plane-url" in rest and "--api-key" in rest and "--json" in rest


async def test_create_get_result_list(system: System) -> None:
    created = await run(system, "tasks", "create", "do it")
    assert created.exit_code == 0, created.output
    task_id = created.stdout.strip()
    step = await system.next_step()
    assert step.data["task_id"] == task_id

    as_json = await run(system, "tasks", "create", "and this", "--task-id", "t2", "--json")
    assert json.loads(as_json.stdout) == {"task_id": "t2"}
    await system.next_step(2)

    not_finished = await run(system, "tasks", "result", task_id)
    assert not_finished.exit_code == 2
    assert not_finished.stdout == ""
    assert "has not finished" in not_finished.stderr
    not_finished_json = await run(system, "tasks", "result", task_id, "--json")
    assert not_finished_json.exit_code == 2
    assert json.loads(not_finished_json.stdout) == {"task_id": task_id, "finished": False}

    shown = await run(system, "tasks", "get", task_id)
    assert shown.exit_code == 0, shown.output
    assert f"Task:    {task_id}" in shown.stdout
    assert "Status:  running" in shown.stdout
    assert "worker" in shown.stdout
    record = TaskRecord.model_validate_json(
        (await run(system, "tasks", "get", task_id, "--json")).stdout
    )
    assert (record.task_id, record.status) == (task_id, TaskStatus.RUNNING)

    listed = await run(system, "tasks", "list")
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["TASK", "STATUS", "STEPS", "UPDATED", "INPUT"]
    assert [row.split()[:3] for row in rows] == [["t2", "running", "1"], [task_id, "running", "1"]]
    summaries = json.loads((await run(system, "tasks", "list", "--json")).stdout)
    assert [TaskSummary.model_validate(s).task_id for s in summaries] == ["t2", task_id]

    await system.worker.answer(step, "done it")
    async with AsyncLlamaAgentsClient(system.url) as client:
        await client.wait_for_result(task_id, timeout=DEADLINE)
    finished = await run(system, "tasks", "result", task_id)
    assert (finished.exit_code, finished.stdout) == (0, "done it\n")
    finished_json = await run(system, "tasks", "result", task_id, "--json")
    assert TaskResult.model_validate_json(finished_json.stdout).result == "done it"


async def test_create_wait_prints_the_result(system: System) -> None:
    waiting = asyncio.ensure_future(run(system, "tasks", "create", "wait for me", "--wait"))
    step = await system.next_step()
    await system.requests.wait_for(is_long_poll(step.data["task_id"]))
    await system.worker.answer(step, "waited")
    async with asyncio.timeout(DEADLINE):
        result = await waiting
    assert (result.exit_code, result.stdout) == (0, "waited\n")

    waiting = asyncio.ensure_future(run(system, "tasks", "create", "json", "--wait", "--json"))
    step = await system.next_step(2)
    await system.worker.answer(step, "as json")
    async with asyncio.timeout(DEADLINE):
        result = await waiting
    assert TaskResult.model_validate_json(result.stdout).result == "as json"


async def test_create_wait_timeout_and_cancel(system: System) -> None:
    timed_out = await run(
        system, "tasks", "create", "slow", "--task-id", "slow", "--timeout", "0.2"
    )
    assert timed_out.exit_code == 2
    assert "Task slow has not finished" in timed_out.stderr

    cancelled = await run(system, "tasks", "cancel", "slow")
    assert (cancelled.exit_code, cancelled.stdout) == (0, "Task slow: cancelled\n")
    again = await run(system, "tasks", "cancel", "slow", "--json")
    assert TaskSummary.model_validate_json(again.stdout).status is TaskStatus.CANCELLED

    failed = await run(system, "tasks", "result", "slow")
    assert one_error_line(failed) == "Error: task slow did not complete: cancelled"
    failed_json = await run(system, "tasks", "result", "slow", "--json")
    assert failed_json.exit_code == 1
    assert TaskResult.model_validate_json(failed_json.stdout).error == "cancelled"


async def test_services_commands(system: System) -> None:
    empty = await run(system, "services", "list")
    assert (empty.exit_code, empty.stdout) == (0, "No services registered.\n")
    async with AsyncLlamaAgentsClient(system.url) as client:
        definition = ServiceDefinition(
            service_name="worker", description="Does the work.", host="10.0.0.5", port=8002
        )
        await client.register_service(definition)

    listed = await run(system, "services", "list")
    assert listed.stdout.splitlines() == [
        "SERVICE  LIVE  CONSUMERS  ADDRESS        DESCRIPTION",
        "worker   yes   1          10.0.0.5:8002  Does the work.",
    ]
    as_json = json.loads((await run(system, "services", "list", "--json")).stdout)
    assert [ServiceDefinition.model_validate(d) for d in as_json] == [definition]

    shown = await run(system, "services", "get", "worker")
    assert shown.exit_code == 0
    assert "Service:     worker" in shown.stdout and "Does the work." in shown.stdout
    got = await run(system, "services", "get", "worker", "--json")
    assert ServiceDefinition.model_validate_json(got.stdout) == definition

    missing = await run(system, "services", "get", "nobody")
    assert one_error_line(missing) == "Error: no service named 'nobody' is registered"


async def test_errors_are_one_line(system: System) -> None:
    for command in (
        ["tasks", "get", "nope"],
        ["tasks", "result", "nope"],
        ["tasks", "cancel", "nope"],
    ):
        assert one_error_line(await run(system, *command)) == "Error: no task with id 'nope'"
    unreachable = await run(None, "tasks", "list", "--control-plane-url", UNREACHABLE)
    assert UNREACHABLE in one_error_line(unreachable)
    bad_url = await run(None, "services", "list", "--control-plane-url", "localhost:8000")
    assert "invalid control plane URL" in one_error_line(bad_url)
    empty_input = await run(system, "tasks", "create", "")
    assert "non-empty input" in one_error_line(empty_input)


async def test_api_key_option_and_env(tmp_path: Path) -> None:
    async with served_system(tmp_path, api_key="k") as locked:
        refused = await run(locked, "tasks", "list")
        assert "API key" in one_error_line(refused)
        wrong = await run(locked, "tasks", "list", "--api-key", "wrong")
        assert "API key" in one_error_line(wrong)
        with_option = await run(locked, "tasks", "list", "--api-key", "k")
        assert (with_option.exit_code, with_option.stdout) == (0, "No tasks.\n")
        with_env = await run(locked, "services", "list", env={"LLAMA_AGENTS_API_KEY": "k"})
        assert with_env.exit_code == 0, with_env.output


async def _subprocess(*args: str, url: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_AGENTS_")}
    env["LLAMA_AGENTS_CONTROL_PLANE_URL"] = url
    process = await asyncio.create_subprocess_exec(
        str(CLI),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE * 2):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_real_subprocess(system: System) -> None:
    code, out, err = await _subprocess("tasks", "create", "from a shell", "--json", url=system.url)
    assert code == 0, err
    task_id = json.loads(out)["task_id"]
    await system.next_step()

    code, out, err = await _subprocess("tasks", "list", "--json", url=system.url)
    assert code == 0, err
    assert [t["task_id"] for t in json.loads(out)] == [task_id]

    code, out, err = await _subprocess("tasks", "result", task_id, url=system.url)
    assert (code, out) == (2, "")
    assert "has not finished" in err

    code, out, err = await _subprocess("tasks", "get", "nope", url=system.url)
    assert (code, out, err) == (1, "", "Error: no task with id 'nope'\n")
