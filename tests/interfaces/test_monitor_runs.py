"""The monitor and workflow runs: a task's events live in the events panel, a run waiting for
input marked with its prompt and answered from the monitor, services' liveness, a bounded task
list; and the event follower's resume, against a stream that breaks.

The app is driven headless (textual's pilot) against a served control plane with a
`WorkflowService` serving `Review` (tests/support/workflows.py). Nothing sleeps: each step
awaits `MonitorApp.wait_until`, which re-checks its condition after every change of the view.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from llama_agents import AsyncLlamaAgentsClient, ServiceDefinition, WorkflowService
from llama_agents.console import monitor_app
from llama_agents.console.monitor_actions import answer_task
from llama_agents.console.monitor_app import MonitorApp
from llama_agents.console.monitor_events import follow_task_events
from llama_agents.console.monitor_state import Connection
from llama_agents.errors import ControlPlaneUnavailableError, TaskNotFoundError
from llama_agents.messages.records import TaskEvent
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE
from tests.support.systems import served_system
from tests.support.workflows import Mesh, Review, mesh

SIZE = (160, 50)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_AGENTS_API_KEY", raising=False)
    monkeypatch.delenv("LLAMA_AGENTS_CONTROL_PLANE_URL", raising=False)


@pytest.fixture
async def reviews(queue_factory: QueueFactory, tmp_path: Path) -> AsyncIterator[Mesh]:
    """A served control plane with `Review` served as the `review` service."""
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Review(), queue, service_name="review", event_coalesce_s=0))
        yield m


@pytest.fixture
async def client(reviews: Mesh) -> AsyncIterator[AsyncLlamaAgentsClient]:
    async with AsyncLlamaAgentsClient(reviews.url) as sdk:
        yield sdk


async def wait(app: MonitorApp, predicate: Callable[[], bool]) -> None:
    await app.wait_until(predicate, timeout=DEADLINE)


async def connected(app: MonitorApp) -> None:
    await wait(app, lambda: app.state.connection is Connection.CONNECTED)


def cell(app: MonitorApp, task_id: str, column: str) -> str | None:
    table = app.task_table
    return str(table.get_cell(task_id, column)) if task_id in table.rows else None


def live_cell(app: MonitorApp, service: str) -> str | None:
    table = app.service_table
    return str(table.get_cell(service, "live")) if service in table.rows else None


def event_types(app: MonitorApp) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in app.event_rows()]


def following(app: MonitorApp) -> int:
    """How many followers of a task's events run now."""
    return sum(1 for w in app.workers if w.group == "task-events" and not w.is_finished)


async def until(pilot: Pilot[None], predicate: Callable[[], bool]) -> None:
    """For what the view does not redraw on (a worker ending): let the app run, then look."""
    async with asyncio.timeout(DEADLINE):
        while not predicate():
            await pilot.pause()


async def waiting_task(m: Mesh, app: MonitorApp, topic: str) -> str:
    """Create a review of `topic`; return its id once the app shows it waiting for input."""
    task_id = await m.create(topic, service="review")
    await wait(app, lambda: cell(app, task_id, "status") == "waiting_for_input")
    return task_id


async def test_a_run_streams_into_the_events_panel_waits_and_is_answered_from_the_monitor(
    reviews: Mesh, client: AsyncLlamaAgentsClient
) -> None:
    app = MonitorApp(client)
    async with app.run_test(size=SIZE) as pilot:
        await connected(app)
        # LIVE: `review` was listed with its consumers; `ghost` is pushed, then looked up.
        columns = [str(column.label) for column in app.service_table.ordered_columns]
        assert columns[:2] == ["SERVICE", "LIVE"]
        await wait(app, lambda: live_cell(app, "review") == "yes")
        await client.register_service(ServiceDefinition(service_name="ghost", description="x"))
        await wait(app, lambda: live_cell(app, "ghost") == "no")

        task_id = await waiting_task(reviews, app, "release notes")
        await wait(app, lambda: app.state.selection == ("task", task_id))  # the first row
        await wait(
            app, lambda: event_types(app) == [("1", "Progress"), ("2", "InputRequiredEvent")]
        )
        [progress, asked] = app.event_rows()
        assert "drafting release notes" in progress[2]
        assert "Approve 'a note about release notes'?" in asked[2]
        assert f"task {task_id[:8]} · live" in app.events_heading_text
        # Marked waiting, its prompt in the details.
        await wait(app, lambda: "Waiting for input" in app.details_text)
        assert "Approve 'a note about release notes'?" in app.details_text
        assert "1 waiting for input" in str(app.tasks_heading.content)

        await pilot.press("a")  # a: the input box answers the selected task
        assert app.focused is app.input_box and app.state.answering_task == task_id
        assert app.input_box.placeholder.startswith(f"Answer task {task_id[:8]}: Approve")
        await pilot.press("y", "e", "s", "enter")
        await wait(app, lambda: f"answered task {task_id[:8]}" in app.status_text)
        assert not app.state.message_is_error

        result = await client.wait_for_result(task_id, timeout=DEADLINE)
        assert result.error is None
        assert result.data["result"] == {"draft": "a note about release notes", "approved": True}
        # The rest of the log streams in, in order, ending with TaskFinished; then it stops.
        await wait(
            app, lambda: bool(event_types(app)) and event_types(app)[-1][1] == "TaskFinished"
        )
        rows = app.event_rows()
        assert [row[0] for row in rows] == [str(n) for n in range(1, len(rows) + 1)]
        assert '"status": "completed"' in rows[-1][2]
        await wait(app, lambda: "finished" in app.events_heading_text)
        await until(pilot, lambda: following(app) == 0)
        await wait(app, lambda: cell(app, task_id, "status") == "completed")
        assert app.state.answering_task is None and app.focused is app.task_table
        assert app.input_box.placeholder.startswith("New task")
        assert "Waiting for input" not in app.details_text


async def test_an_answer_to_a_finished_task_is_an_error_line_and_the_app_stays_up(
    reviews: Mesh, client: AsyncLlamaAgentsClient
) -> None:
    app = MonitorApp(client)
    async with app.run_test(size=SIZE) as pilot:
        await connected(app)
        task_id = await waiting_task(reviews, app, "the refund")
        await wait(app, lambda: app.state.selection == ("task", task_id))
        await pilot.press("enter")  # Enter on a waiting task: its answer box
        await wait(app, lambda: app.focused is app.input_box)
        assert app.state.answering_task == task_id

        # Someone else answers first: the task finishes while this person types.
        await client.respond(task_id, "no")
        await wait(app, lambda: cell(app, task_id, "status") == "completed")
        assert "no longer waits for input (completed" in app.input_box.placeholder
        await pilot.press("y", "e", "s", "enter")
        await wait(app, lambda: "has already finished" in app.status_text)
        assert f"cannot answer task {task_id[:8]}" in app.status_text
        assert app.state.message_is_error and app.is_running
        assert app.state.answering_task is None and app.input_box.value == ""
        assert app.focused is app.task_table
        result = await client.wait_for_result(task_id, timeout=DEADLINE)
        assert result.data["result"]["approved"] is False  # the first answer stands

        # A task the control plane does not know: said, not raised.
        unknown = await answer_task(client, "no-such-task", "yes")
        assert (unknown.sent, unknown.final) == (False, True)
        assert "does not know" in unknown.problem


async def test_the_events_panel_follows_the_selected_task_only(
    reviews: Mesh, client: AsyncLlamaAgentsClient
) -> None:
    app = MonitorApp(client)
    async with app.run_test(size=SIZE) as pilot:
        await connected(app)
        first = await waiting_task(reviews, app, "first")
        second = await waiting_task(reviews, app, "second")
        await wait(app, lambda: app.state.selection == ("task", first))
        await wait(app, lambda: len(app.event_rows()) == 2 and "first" in app.event_rows()[0][2])

        await pilot.press("down")  # another task: the panel starts over with its events
        await wait(app, lambda: app.state.selection == ("task", second))
        await wait(app, lambda: len(app.event_rows()) == 2 and "second" in app.event_rows()[0][2])
        assert following(app) == 1

        # The first task finishing is not shown: only the selected task is followed.
        await client.respond(first, "yes")
        await wait(app, lambda: cell(app, first, "status") == "completed")
        assert [row[1] for row in app.event_rows()] == ["Progress", "InputRequiredEvent"]

        # Moving to a service stops following; back on a task, its whole log is read.
        app.service_table.focus()
        await wait(app, lambda: app.state.selection == ("service", "review"))
        await wait(app, lambda: not app.event_rows())
        await until(pilot, lambda: following(app) == 0)
        assert "select a task" in app.events_heading_text
        app.task_table.focus()
        await pilot.press("up")
        await wait(app, lambda: app.state.selection == ("task", first))
        await wait(
            app, lambda: bool(app.event_rows()) and app.event_rows()[-1][1] == "TaskFinished"
        )
        await client.respond(second, "yes")
        await client.wait_for_result(second, timeout=DEADLINE)


async def test_the_task_list_loads_a_bounded_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor_app, "TASK_PAGE", 2)
    async with served_system(tmp_path) as system, AsyncLlamaAgentsClient(system.url) as sdk:
        created = [await sdk.create_task(f"task {n}") for n in range(3)]
        app = MonitorApp(sdk)
        async with app.run_test(size=SIZE):
            await connected(app)
            assert set(app.state.tasks) == set(created[1:])  # the newest page only
            assert "/tasks?limit=2" in system.requests.seen
            later = await sdk.create_task("pushed")  # pushed tasks are added as they come
            await wait(app, lambda: later in app.state.tasks)


# -- the follower, against a stream that breaks ---------------------------------------------


def event(sequence: int, type: str = "Progress", **data: Any) -> TaskEvent:
    return TaskEvent(sequence=sequence, type=type, data=data, created_at=datetime.now(UTC))


class BreakingStreams:
    """`stream_events` whose connections deliver scripted events, then break or end."""

    def __init__(self, *connections: tuple[list[TaskEvent], Exception | None]) -> None:
        self.connections = list(connections)
        self.asked: list[int | None] = []

    async def stream_events(
        self, task_id: str, after: int | None = None
    ) -> AsyncIterator[TaskEvent]:
        self.asked.append(after)
        events, then = self.connections.pop(0)
        for item in events:
            yield item
        if then is not None:
            raise then


async def test_the_follower_resumes_after_the_last_event_seen_without_gaps_or_repeats() -> None:
    dropped = ControlPlaneUnavailableError("cannot reach the control plane: connection reset")
    streams = BreakingStreams(
        ([event(1), event(2)], dropped),
        ([], ControlPlaneUnavailableError("refused")),  # still away: backoff, try again
        ([event(2), event(3)], None),  # repeats one, then ends early (a restart)
        ([event(4, "TaskFinished", status="completed")], None),
    )
    seen: list[int] = []
    troubles: list[str] = []
    await follow_task_events(
        streams,
        "t1",
        received=lambda e: seen.append(e.sequence),
        trouble=troubles.append,
        retry_initial=0,
    )
    assert seen == [1, 2, 3, 4]
    assert streams.asked == [None, 2, 2, 3]
    assert "connection reset (resuming after #2" in troubles[0]
    assert "ended early (resuming after #3" in troubles[-1]
    assert not streams.connections  # it stopped after TaskFinished


async def test_the_follower_stops_for_an_unknown_or_finished_task() -> None:
    troubles: list[str] = []
    unknown = BreakingStreams(([], TaskNotFoundError("nope")))
    await follow_task_events(
        unknown, "nope", received=lambda e: None, trouble=troubles.append, retry_initial=0
    )
    assert troubles == ["no task with id 'nope'"]

    # A finished task whose log has no TaskFinished (older than it): read once, then done.
    old = BreakingStreams(([event(1)], None))
    seen: list[int] = []
    await follow_task_events(
        old,
        "old",
        received=lambda e: seen.append(e.sequence),
        trouble=troubles.append,
        finished=lambda: True,
        retry_initial=0,
    )
    assert seen == [1] and old.asked == [None]
