"""`llama-agents tasks ...` and a workflow's run: events printed (and followed until the
task ends), a person's answer (`respond`) and any declared event (`send-event`) completing a
waiting run, the new `create` / `list` / `get` options, `services list`'s live columns, and
one `Error:` line with exit status 1 for every refusal.

A real control plane serves real `WorkflowService`s (`Review` asks a person; `Research`
starts from a typed start event).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llama_agents import (
    SimpleMessageQueue,
    TaskEvent,
    TaskRecord,
    TaskResult,
    TaskStatus,
    TaskSummary,
    WorkflowService,
)
from tests.conftest import QueueFactory
from tests.support.cli import cli, cli_process, ok, one_error_line
from tests.support.helpers import DEADLINE
from tests.support.sdk_workflows import Research
from tests.support.workflows import Mesh, Review, mesh


async def waiting(m: Mesh, task_id: str) -> None:
    await m.control_plane.wait_for_status(task_id, {TaskStatus.WAITING_FOR_INPUT}, timeout=DEADLINE)


async def create(m: Mesh, *args: str) -> str:
    return ok(await cli(m.url, "tasks", "create", *args)).strip()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Mesh]:
    queue = SimpleMessageQueue()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Review(), queue, service_name="review", event_coalesce_s=0))
        await m.add(WorkflowService(Research(), queue, service_name="research"))
        yield m
    await queue.cleanup()


async def test_events_follow_respond_and_read_back(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    """On both queues: `events --follow` prints each event as it comes and returns when the
    task ends; `respond` is what ends it."""
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Review(), queue, service_name="review", event_coalesce_s=0))
        task_id = await create(m, "release notes", "--service", "review")
        following = await cli_process(m.url, "tasks", "events", task_id, "--follow")
        assert following.stdout is not None
        async with asyncio.timeout(DEADLINE):
            # Printed as they happen: the first two events, while the run waits for a person.
            first_two = [(await following.stdout.readline()).decode() for _ in range(2)]
        assert following.returncode is None

        answered = ok(await cli(m.url, "tasks", "respond", task_id, "yes"))
        assert answered == f"Sent to task {task_id} (sent).\n"
        async with asyncio.timeout(DEADLINE):
            rest, errors = await following.communicate()
        assert (following.returncode, errors) == (0, b"")
        followed = "".join([*first_two, rest.decode()]).splitlines()
        assert followed[0] == '   1  Progress  {"message":"drafting release notes"}'
        assert followed[1].startswith("   2  InputRequiredEvent  {")
        assert "Approve 'a note about release notes'?" in followed[1]
        assert followed[-1].split()[1] == "TaskFinished"
        assert '"status":"completed"' in followed[-1] and '"approved":true' in followed[-1]
        assert [int(line.split()[0]) for line in followed] == list(range(1, len(followed) + 1))

        # Read again, now that it ended: the same lines, or the events as JSON lines.
        assert ok(await cli(m.url, "tasks", "events", task_id)).splitlines() == followed
        as_json = ok(await cli(m.url, "tasks", "events", task_id, "--json")).splitlines()
        events = [TaskEvent.model_validate_json(line) for line in as_json]
        assert [e.sequence for e in events] == list(range(1, len(followed) + 1))
        assert events[-1].data["result"] == {
            "draft": "a note about release notes",
            "approved": True,
        }
        after = ok(await cli(m.url, "tasks", "events", task_id, "--after", "2", "--json"))
        assert [TaskEvent.model_validate_json(line) for line in after.splitlines()] == events[2:]

        late = await cli(m.url, "tasks", "respond", task_id, "no")
        assert one_error_line(late) == f"Error: task {task_id} is completed"


async def test_create_follow_prints_the_new_tasks_events_to_its_end(served: Mesh) -> None:
    """`tasks create --follow`: the id on stderr, the events as `events --follow` prints them
    (from the same request that created the task); exit 0 once it completed, 1 with one
    `Error:` line when it ended otherwise (cancelled here). `--no-result-message` publishes
    no result message."""
    following = await cli_process(
        served.url,
        *("tasks", "create", "release notes", "--service", "review", "--follow"),
        "--no-result-message",
    )
    assert following.stdout is not None and following.stderr is not None
    async with asyncio.timeout(DEADLINE):
        announced = (await following.stderr.readline()).decode()
        first_two = [(await following.stdout.readline()).decode() for _ in range(2)]
    task_id = announced.removeprefix("Task ").strip()
    assert announced == f"Task {task_id}\n" and task_id
    assert first_two[0] == '   1  Progress  {"message":"drafting release notes"}\n'
    assert first_two[1].startswith("   2  InputRequiredEvent  {")
    ok(await cli(served.url, "tasks", "respond", task_id, "yes"))
    async with asyncio.timeout(DEADLINE):
        rest, errors = await following.communicate()
    assert (following.returncode, errors) == (0, b"")
    last = rest.decode().splitlines()[-1]
    assert last.split()[1] == "TaskFinished" and '"status":"completed"' in last
    printed = "".join(first_two) + rest.decode()
    assert ok(await cli(served.url, "tasks", "events", task_id)) == printed
    record = TaskRecord.model_validate_json(
        ok(await cli(served.url, "tasks", "get", task_id, "--json"))
    )
    assert record.result_key is None  # --no-result-message: nothing published to `human`

    cancelled = await cli_process(
        served.url, "tasks", "create", "x", "--service", "review", "--task-id", "c1", "-f", "--json"
    )
    assert cancelled.stdout is not None
    async with asyncio.timeout(DEADLINE):
        first = TaskEvent.model_validate_json(await cancelled.stdout.readline())
    assert (first.sequence, first.type) == (1, "Progress")
    await waiting(served, "c1")
    ok(await cli(served.url, "tasks", "cancel", "c1"))
    async with asyncio.timeout(DEADLINE):
        rest, errors = await cancelled.communicate()
    assert cancelled.returncode == 1
    assert errors.decode().splitlines() == ["Task c1", "Error: task c1 did not complete: cancelled"]
    assert TaskEvent.model_validate_json(rest.splitlines()[-1]).data["status"] == "cancelled"

    refused = await cli(served.url, "tasks", "create", "x", "--service", "nobody", "--follow")
    assert one_error_line(refused).startswith("Error: ")
    both = await cli(served.url, "tasks", "create", "x", "--follow", "--wait")
    assert both.exit_code == 2 and "--follow" in both.stderr


async def test_send_event_completes_a_waiting_run_and_refusals_are_one_line(
    served: Mesh,
) -> None:
    task_id = await create(served, "budget", "--service", "review")
    await waiting(served, task_id)
    send = ("tasks", "send-event", task_id)

    unknown = one_error_line(await cli(served.url, *send, "Decision"))
    assert unknown.startswith("Error: 'Decision' is not an event of 'review'; it accepts ")
    wrong = one_error_line(await cli(served.url, *send, "Drafted", "--data", '{"text": 5}'))
    assert wrong.startswith("Error: Drafted fields are invalid: text: 5 is not of type")
    not_an_object = one_error_line(await cli(served.url, *send, "Drafted", "--data", "[1]"))
    assert not_an_object == "Error: --data must be a JSON object ({...}), not '[1]'"
    broken = one_error_line(await cli(served.url, *send, "Drafted", "--data", "{nope"))
    assert broken.startswith("Error: --data is not valid JSON: ")
    missing = await cli(served.url, "tasks", "send-event", "nope", "HumanResponseEvent")
    assert one_error_line(missing) == "Error: no task with id 'nope'"
    assert one_error_line(await cli(served.url, "tasks", "events", "nope")) == (
        "Error: no task with id 'nope'"
    )

    sent = await cli(served.url, *send, "HumanResponseEvent", "--data", '{"response": "no"}')
    assert ok(sent) == f"Sent to task {task_id} (sent).\n"
    finished = ok(await cli(served.url, "tasks", "result", task_id, "--wait", "--json"))
    result = TaskResult.model_validate_json(finished)
    assert result.data["result"] == {"draft": "a note about budget", "approved": False}
    again = await cli(served.url, *send, "HumanResponseEvent", "--json")
    assert one_error_line(again) == f"Error: task {task_id} is completed"


async def test_create_with_a_start_event_a_service_and_a_session(served: Mesh) -> None:
    started = await cli(
        served.url,
        "tasks",
        "create",
        "x",
        "--service",
        "research",
        "--start-event",
        '{"topic": "llamas", "depth": 3}',
        "--wait",
        "--json",
    )
    assert TaskResult.model_validate_json(ok(started)).data["result"] == {
        "topic": "llamas",
        "depth": 3,
    }
    for args, error in (
        (["--service", "nobody"], "Error: no service named 'nobody' is registered"),
        (["--service", "review", "--session", "nope"], "Error: no session with id 'nope'"),
        (["--start-event", "[]"], "Error: --start-event must be a JSON object ({...}), not '[]'"),
    ):
        assert one_error_line(await cli(served.url, "tasks", "create", "x", *args)) == error
    refused = await cli(
        served.url, "tasks", "create", "x", "--service", "research", "--start-event", "{}"
    )
    assert "topic" in one_error_line(refused)

    session = ok(await cli(served.url, "sessions", "create")).strip()
    in_session = await create(served, "in a session", "--service", "review", "--session", session)
    record = TaskRecord.model_validate_json(
        ok(await cli(served.url, "tasks", "get", in_session, "--json"))
    )
    assert (record.service, record.session_id) == ("review", session)


async def test_get_shortens_long_texts_unless_full(served: Mesh) -> None:
    topic = " ".join(["llama"] * 240)  # 1,439 characters
    task_id = await create(served, topic, "--service", "review")
    await waiting(served, task_id)

    shown = ok(await cli(served.url, "tasks", "get", task_id))
    fields = dict(line.split(":", 1) for line in shown.splitlines() if not line.startswith(" "))
    assert fields["Status"].strip() == "waiting_for_input"
    assert fields["Service"].strip() == "review"
    assert fields["Input"].strip().endswith("… (1,439 characters)")
    assert len(fields["Input"]) < 250
    assert fields["Waiting for"].strip().startswith('{"prefix":"Approve \'a note about llama')
    assert topic not in shown
    full = ok(await cli(served.url, "tasks", "get", task_id, "--full"))
    assert topic in full and "characters)" not in full

    ok(await cli(served.url, "tasks", "respond", task_id, "yes"))
    ok(await cli(served.url, "tasks", "result", task_id, "--wait"))
    done = ok(await cli(served.url, "tasks", "get", task_id))
    result_line = next(line for line in done.splitlines() if line.startswith("Result:"))
    assert result_line.endswith("characters)") and len(result_line) < 250
    assert "Waiting for" not in done
    assert '"approved": true' in ok(await cli(served.url, "tasks", "get", task_id, "--full"))


async def test_list_filters_newest_first(served: Mesh) -> None:
    done = [await create(served, f"done {i}", "--service", "review") for i in range(3)]
    for task_id in done:
        await waiting(served, task_id)
        ok(await cli(served.url, "tasks", "respond", task_id, "yes"))
        ok(await cli(served.url, "tasks", "result", task_id, "--wait"))
    open_task = await create(served, "still open", "--service", "review")
    await waiting(served, open_task)

    listed = ok(await cli(served.url, "tasks", "list")).splitlines()
    assert listed[0].split() == ["TASK", "STATUS", "STEPS", "UPDATED", "INPUT"]
    assert [row.split()[0] for row in listed[1:]] == [open_task, *reversed(done)]

    def ids(output: str) -> list[str]:
        return [TaskSummary.model_validate(t).task_id for t in json.loads(output)]

    completed = await cli(served.url, "tasks", "list", "--status", "completed", "--json")
    assert ids(ok(completed)) == list(reversed(done))
    newest = await cli(served.url, "tasks", "list", "--status", "completed", "--limit", "2")
    assert [row.split()[0] for row in ok(newest).splitlines()[1:]] == [done[2], done[1]]
    both = await cli(
        served.url,
        "tasks",
        "list",
        "--status",
        "waiting_for_input",
        "--status",
        "failed",
        "--json",
    )
    assert ids(ok(both)) == [open_task]
    bad = await cli(served.url, "tasks", "list", "--status", "done")
    assert bad.exit_code == 2 and "'done' is not one of" in bad.stderr  # click's usage error

    services = ok(await cli(served.url, "services", "list")).splitlines()
    assert services[0].split() == ["SERVICE", "LIVE", "CONSUMERS", "ADDRESS", "DESCRIPTION"]
    rows = {row.split()[0]: row.split()[1:3] for row in services[1:]}
    assert rows == {"research": ["yes", "1"], "review": ["yes", "1"]}
    shown = ok(await cli(served.url, "services", "get", "review"))
    assert "Live:        yes" in shown and "Consumers:   1" in shown


async def test_new_commands_have_help() -> None:
    for command in (
        ["tasks", "events"],
        ["tasks", "respond"],
        ["tasks", "send-event"],
        ["sessions"],
        ["sessions", "create"],
        ["sessions", "get"],
        ["sessions", "delete"],
    ):
        result = await cli(None, *command, "--help")
        usage, _, rest = ok(result).partition("\n\n")
        assert usage.startswith("Usage: llama-agents " + " ".join(command))
        assert rest.strip().splitlines()[0].strip()
