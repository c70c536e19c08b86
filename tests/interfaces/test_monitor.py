"""`llama-agents monitor` (the textual app) against a served control plane, driven headless.

Nothing here sleeps: each step awaits `MonitorApp.wait_until`, which re-checks its condition
each time the app applied a pushed event, loaded a list or redrew its status or details.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from llama_agents import (
    AsyncLlamaAgentsClient,
    ControlPlaneServer,
    HumanService,
    Pipeline,
    PipelineOrchestrator,
    ServiceComponent,
    ServiceDefinition,
    SimpleMessageQueue,
    TaskStatus,
)
from llama_agents.console import main
from llama_agents.console.monitor_app import MonitorApp
from llama_agents.console.monitor_humans import WaitingRequest
from llama_agents.console.monitor_state import Connection
from llama_agents.control_plane import SqliteStateStore
from tests.support.control_plane import serve, stop
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator
from tests.support.processes import free_port
from tests.support.systems import UNREACHABLE, System, served_system

SIZE = (140, 40)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_AGENTS_API_KEY", raising=False)
    monkeypatch.delenv("LLAMA_AGENTS_CONTROL_PLANE_URL", raising=False)


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    async with served_system(tmp_path) as served:
        yield served


@pytest.fixture
async def client(system: System) -> AsyncIterator[AsyncLlamaAgentsClient]:
    async with AsyncLlamaAgentsClient(system.url) as sdk:
        yield sdk


def cell(app: MonitorApp, task_id: str, column: str) -> str | None:
    """What the task list shows in `column` for the task, None while it is not listed."""
    table = app.task_table
    return str(table.get_cell(task_id, column)) if task_id in table.rows else None


def service_names(app: MonitorApp) -> list[str]:
    table = app.service_table
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def wait(app: MonitorApp, predicate: Callable[[], bool]) -> None:
    await app.wait_until(predicate, timeout=DEADLINE)


async def connected(app: MonitorApp) -> None:
    await wait(app, lambda: app.state.connection is Connection.CONNECTED)


async def type_text(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*("space" if char == " " else char for char in text))


def control_plane(tmp_path: Path, port: int) -> ControlPlaneServer:
    return ControlPlaneServer(
        SimpleMessageQueue(),
        FanOutOrchestrator(["worker"]),
        SqliteStateStore(tmp_path / "cp.db"),
        port=port,
    )


@pytest.fixture
async def human(tmp_path: Path) -> AsyncIterator[tuple[HumanService, AsyncLlamaAgentsClient]]:
    """A served control plane whose one step is a served `HumanService` nobody answers."""

    async def nobody(prompt: str) -> str:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    queue = SimpleMessageQueue()
    operator = HumanService(queue, service_name="operator", fn_input=nobody, port=0)
    serving_human = asyncio.create_task(operator.launch_server())
    await operator.wait_until_serving()
    pipeline = PipelineOrchestrator(Pipeline.sequence(ServiceComponent.from_service(operator)))
    server = ControlPlaneServer(queue, pipeline, SqliteStateStore(tmp_path / "cp.db"), port=0)
    serving = await serve(server)
    try:
        async with AsyncLlamaAgentsClient(server.url) as sdk:
            await sdk.register_service(operator.service_definition)
            yield operator, sdk
    finally:
        for request in operator.pending():  # else the service waits for them as it stops
            operator.answer(request.id_, "(test over)")
        operator.stop_server()
        await asyncio.wait_for(serving_human, DEADLINE)
        await stop(server, serving)


def waiting_for(app: MonitorApp, task_id: str) -> WaitingRequest | None:
    """The request of the task that the app lists as waiting, if any."""
    return next((r for r in app.state.requests.values() if r.task_id == task_id), None)


async def test_lists_services_and_follows_a_task_live(
    system: System, client: AsyncLlamaAgentsClient
) -> None:
    await client.register_service(ServiceDefinition(service_name="worker", description="Works."))
    app = MonitorApp(client)
    async with app.run_test(size=SIZE):
        await connected(app)
        assert service_names(app) == ["worker"]
        assert "connected" in app.status_text and system.url in app.status_text

        # Pushed: a service registered and deregistered after the app loaded its lists.
        await client.register_service(
            ServiceDefinition(service_name="helper", description="Helps.", host="h", port=81)
        )
        await wait(app, lambda: service_names(app) == ["worker", "helper"])
        await client.deregister_service("helper")
        await wait(app, lambda: service_names(app) == ["worker"])

        task_id = await client.create_task("follow me")
        await wait(app, lambda: cell(app, task_id, "status") == "running")
        assert cell(app, task_id, "id") == task_id[:8]
        assert cell(app, task_id, "input") == "follow me"

        await system.worker.answer(await system.next_step(), "followed")
        await wait(app, lambda: cell(app, task_id, "status") == "completed")
        record = await client.get_task(task_id)
        assert cell(app, task_id, "updated") == record.updated_at.strftime("%H:%M:%SZ")


async def test_selecting_a_task_shows_its_details(
    system: System, client: AsyncLlamaAgentsClient
) -> None:
    first = await client.create_task("first question")
    await system.worker.answer(await system.next_step(1), "first answer")
    second = await client.create_task("second question")
    app = MonitorApp(client)
    async with app.run_test(size=SIZE) as pilot:
        await connected(app)
        assert app.focused is app.task_table
        await wait(app, lambda: cell(app, first, "status") == "completed")
        await pilot.press("down")  # the cursor starts on the first (oldest) task
        await wait(
            app, lambda: app.state.selection == ("task", second) and "Steps" in app.details_text
        )
        await wait(app, lambda: "worker  pending" in app.details_text)
        assert "second question" in app.details_text and "running" in app.details_text

        await pilot.press("up")
        await wait(app, lambda: "first answer" in app.details_text)
        details = app.details_text
        assert first in details and "completed" in details and "first question" in details
        assert "Result" in details and "worker  completed" in details

        # The selected task's details follow its pushed changes too.
        await pilot.press("down")
        await wait(app, lambda: app.state.selection == ("task", second))
        await system.worker.answer(await system.next_step(2), "second answer")
        await wait(app, lambda: "second answer" in app.details_text)

        # A service's details, from the service list (tab leaves the task list for it).
        await client.register_service(
            ServiceDefinition(service_name="worker", description="Works.", host="w", port=8002)
        )
        await wait(app, lambda: service_names(app) == ["worker"])
        app.service_table.focus()
        await wait(app, lambda: app.state.selection == ("service", "worker"))
        assert all(text in app.details_text for text in ("worker", "Works.", "w", "8002"))


async def test_typing_a_task_creates_and_selects_it(
    system: System, client: AsyncLlamaAgentsClient
) -> None:
    app = MonitorApp(client)
    async with app.run_test(size=SIZE) as pilot:
        await connected(app)
        assert app.focused is app.task_table
        await pilot.press("tab")  # tab and shift+tab move between the panes
        assert app.focused is app.query_one("#details-pane")
        await pilot.press("shift+tab", "shift+tab")
        assert app.focused is app.service_table
        await pilot.press("n")  # n: to the input box
        assert app.focused is app.input_box
        # q, c and r are text in the input box, not the app's keys.
        await type_text(pilot, "quick check, reply now")
        await pilot.press("enter")
        await wait(
            app,
            lambda: app.state.selection is not None and app.state.selection[1] in app.state.tasks,
        )
        [task] = await client.list_tasks()
        assert task.input == "quick check, reply now"
        assert app.state.selection == ("task", task.task_id)
        assert app.task_table.cursor_row == app.task_table.get_row_index(task.task_id)
        assert app.input_box.value == ""
        assert f"created task {task.task_id[:8]}" in app.status_text
        await wait(app, lambda: "quick check, reply now" in app.details_text)

        await pilot.press("enter")  # nothing typed: said so, nothing sent
        await wait(app, lambda: "type the task's input" in app.status_text)
        assert len(await client.list_tasks()) == 1
        await pilot.press("escape")  # back to the task list, where q quits
        assert app.focused is app.task_table
        await pilot.press("q")
        assert not app.is_running


async def test_c_cancels_the_selected_running_task(
    system: System, client: AsyncLlamaAgentsClient
) -> None:
    app = MonitorApp(client)
    async with app.run_test(size=SIZE) as pilot:
        await connected(app)
        task_id = await client.create_task("never answered")
        await system.next_step()
        await wait(app, lambda: cell(app, task_id, "status") == "running")
        await wait(app, lambda: app.state.selection == ("task", task_id))
        await pilot.press("c")
        await wait(app, lambda: cell(app, task_id, "status") == "cancelled")
        assert f"cancelled task {task_id[:8]}" in app.status_text
        assert (await client.get_task(task_id)).status is TaskStatus.CANCELLED
        await wait(app, lambda: "Error" in app.details_text and "cancelled" in app.details_text)

        await pilot.press("c")  # a finished task is left as it is, and the app says so
        await wait(app, lambda: "has already finished (cancelled)" in app.status_text)


async def test_r_reloads_the_lists(system: System, client: AsyncLlamaAgentsClient) -> None:
    app = MonitorApp(client)
    async with app.run_test(size=SIZE) as pilot:
        await connected(app)
        await pilot.press("r")
        await wait(app, lambda: "reloaded" in app.status_text)
        assert app.state.tasks == {} and app.is_running


async def test_messages_that_arrive_while_the_app_closes_are_ignored(
    system: System, client: AsyncLlamaAgentsClient
) -> None:
    # Closing empties the screen stack before the queue is drained: a row highlighted just
    # then (a pushed task moved a cursor) once failed the app with "No screens on stack".
    task_id = await client.create_task("highlight me")
    app = MonitorApp(client)
    async with app.run_test(size=SIZE):
        await connected(app)
        await wait(app, lambda: task_id in app.state.tasks)
        table = app.task_table
        selected = app.state.selection
    assert not app.screen_stack
    app._row_highlighted(DataTable.RowHighlighted(table, 0, RowKey(task_id)))
    assert app.in_focus is None and app.state.selection == selected
    assert app.check_action("leave", ()) is False


async def test_unreachable_at_start_keeps_retrying_then_connects(tmp_path: Path) -> None:
    port = free_port()
    server = control_plane(tmp_path, port)
    serving: asyncio.Task[None] | None = None
    try:
        async with AsyncLlamaAgentsClient(server.url, timeout=5) as sdk:
            app = MonitorApp(sdk, retry_initial=0.05, retry_max=0.2)
            async with app.run_test(size=SIZE):
                await wait(app, lambda: "cannot reach the control plane" in app.status_text)
                assert app.state.connection is Connection.RECONNECTING
                assert "reconnecting" in app.status_text and app.is_running

                serving = await serve(server)
                await connected(app)
                await sdk.register_service(ServiceDefinition(service_name="late", description="x"))
                await wait(app, lambda: service_names(app) == ["late"])
    finally:  # the app has let go of its event stream: the server stops at once
        if serving is not None:
            await stop(server, serving)


async def test_reconnects_and_reloads_after_a_restart(tmp_path: Path) -> None:
    server = control_plane(tmp_path, 0)
    await server.message_queue.declare_queue("worker")  # its steps wait there, unanswered
    serving = await serve(server)
    port = server.port
    async with AsyncLlamaAgentsClient(server.url, timeout=5) as sdk:
        before = await sdk.create_task("before the restart")
        app = MonitorApp(sdk, retry_initial=0.05, retry_max=0.2)
        async with app.run_test(size=SIZE):
            await connected(app)
            await wait(app, lambda: cell(app, before, "status") == "running")

            # The stream is open: stopping waits for uvicorn's graceful shutdown to end it.
            await stop(server, serving)
            await wait(app, lambda: app.state.connection is Connection.RECONNECTING)

            server = control_plane(tmp_path, port)  # same store: the task is still there
            await server.message_queue.declare_queue("worker")
            serving = await serve(server)
            await connected(app)
            assert cell(app, before, "status") == "running"
            after = await sdk.create_task("after the restart")
            await wait(app, lambda: cell(app, after, "status") is not None)
        await stop(server, serving)


async def test_unauthorised_is_reported_in_the_status_line(tmp_path: Path) -> None:
    async with (
        served_system(tmp_path, api_key="k") as locked,
        AsyncLlamaAgentsClient(locked.url, api_key="wrong") as sdk,
    ):
        app = MonitorApp(sdk, retry_initial=0.05, retry_max=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await wait(app, lambda: "refused the API key" in app.status_text)
            await pilot.press("n", *"typed", "enter")
            await wait(app, lambda: "cannot create the task" in app.status_text)
            assert app.input_box.value == "typed"
            assert app.is_running


async def test_unreachable_actions_report_errors() -> None:
    async with AsyncLlamaAgentsClient(UNREACHABLE, timeout=5) as sdk:
        app = MonitorApp(sdk, retry_initial=5, retry_max=60)
        async with app.run_test(size=SIZE) as pilot:
            await wait(app, lambda: app.state.connection is Connection.RECONNECTING)
            await pilot.press("c")
            await wait(app, lambda: "select a task to cancel" in app.status_text)
            await pilot.press("r")  # reconnects at once instead of after the 5 s backoff
            await wait(app, lambda: "retrying in 10s" in app.status_text)
            assert app.is_running


async def test_answering_a_waiting_request(
    human: tuple[HumanService, AsyncLlamaAgentsClient],
) -> None:
    _, sdk = human
    app = MonitorApp(sdk)
    async with app.run_test(size=SIZE) as pilot:
        await connected(app)
        assert app.request_table.display and not app.state.requests
        task_id = await sdk.create_task("approve the refund?")
        await wait(app, lambda: waiting_for(app, task_id) is not None)
        request = waiting_for(app, task_id)
        assert request is not None and request.service == "operator"
        row = [str(cell) for cell in app.request_table.get_row(request.key)]
        assert row[:3] == ["operator", task_id[:8], "approve the refund?"]

        # Selecting it shows its prompt and turns the input box into its answer box.
        app.request_table.focus()
        await wait(app, lambda: app.state.selection == ("request", request.key))
        assert "approve the refund?" in app.details_text and "Prompt" in app.details_text
        assert app.state.answering == request
        assert app.input_box.placeholder.startswith("Answer the selected request")
        await pilot.press("enter")  # enter on the request: to the answer box
        await wait(app, lambda: app.focused is app.input_box)
        await type_text(pilot, "approved")
        await pilot.press("enter")

        await wait(app, lambda: f"answered the request of task {task_id[:8]}" in app.status_text)
        assert (await sdk.wait_for_result(task_id, timeout=DEADLINE)).result == "approved"
        await wait(
            app, lambda: not app.state.requests and cell(app, task_id, "status") == "completed"
        )
        assert app.state.answering is None and app.input_box.value == ""
        assert app.input_box.placeholder.startswith("New task")
        assert app.state.selection == ("task", task_id)
        await wait(app, lambda: "approved" in app.details_text)


async def test_a_request_answered_elsewhere_is_reported(
    human: tuple[HumanService, AsyncLlamaAgentsClient],
) -> None:
    operator, sdk = human
    app = MonitorApp(sdk)
    async with app.run_test(size=SIZE) as pilot:
        await connected(app)
        task_id = await sdk.create_task("who answers first?")
        await wait(app, lambda: waiting_for(app, task_id) is not None)
        await pilot.press("a")  # a: answer the request under the cursor
        assert app.focused is app.input_box and app.state.answering is not None
        request = app.state.answering

        # Someone else answers while this person is still typing: the list drops it.
        operator.answer(request.id_, "the other person")
        assert (await sdk.wait_for_result(task_id, timeout=DEADLINE)).result == "the other person"
        await wait(app, lambda: not app.state.requests)
        assert app.state.answering == request and "no longer waits" in app.input_box.placeholder
        await type_text(pilot, "me")
        await pilot.press("enter")
        await wait(app, lambda: "was already answered" in app.status_text)
        assert app.is_running and app.state.answering is None and not app.state.message_is_error
        assert app.input_box.placeholder.startswith("New task")

        # esc leaves the input box for the lists; with nothing waiting, a says so.
        await pilot.press("escape")
        assert app.focused is app.task_table
        await pilot.press("a")
        await wait(app, lambda: "nothing is waiting for you" in app.status_text)


async def test_human_service_errors_are_reported(
    system: System, client: AsyncLlamaAgentsClient
) -> None:
    app = MonitorApp(client)
    async with app.run_test(size=SIZE):
        await connected(app)
        assert not app.request_table.display  # no human service: no "Waiting for you" list
        ghost = ServiceDefinition(
            service_name="ghost", description="x", kind="human", host="127.0.0.1", port=free_port()
        )
        await client.register_service(ghost)
        await wait(app, lambda: "cannot list the requests waiting at ghost" in app.status_text)
        assert app.request_table.display and app.is_running


async def test_cli_help_and_bad_url() -> None:
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, main, ["monitor", "--help"])
    assert result.exit_code == 0, result.output
    for text in ("--control-plane-url", "LLAMA_AGENTS_CONTROL_PLANE_URL", "--api-key"):
        assert text in result.output

    bad = await asyncio.to_thread(
        runner.invoke, main, ["monitor", "--control-plane-url", "localhost:8000"]
    )
    assert bad.exit_code == 1
    assert bad.stderr.startswith("Error: invalid control plane URL")
    assert "Traceback" not in bad.output
