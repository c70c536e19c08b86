"""The `llama-agents monitor` terminal app: a live view of a control plane's services and tasks.

The lists are loaded once, then kept current by the events the control plane pushes
(`GET /events`), so the view changes the moment a task does, without polling. Every network
call runs in a worker on the app's event loop: the UI never waits on the network, and a failure
is a line in the status bar, never a traceback.

The selected task's event log is followed live in the events panel (monitor_events.py), from
its first event, resumed after the last one seen when the stream drops, until its
`TaskFinished` event. A task whose workflow run waits for a person (`waiting_for_input`) is
marked in the task list and shows what it asks; `a` (or Enter on it) turns the input box into
its answer box, and the answer goes through the control plane (monitor_actions.py). The
services list says whether anything consumes each service's queue (LIVE).

Human services (`kind == "human"`) get a "Waiting for you" list: the requests waiting for a
person at each of them, fetched from the services themselves whenever an event says the list
may have changed (a task moved, a service came or went, a reload). Selecting a request turns
the input box into its answer box.

What the monitor knows lives in `MonitorState` (monitor_state.py), how it looks in
monitor_render.py; this app draws the state's changes, runs the fetches it asks for, and turns
keys into calls on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Input, Static

from llama_agents.console import monitor_render as render
from llama_agents.console.monitor_actions import answer_task
from llama_agents.console.monitor_events import follow_task_events
from llama_agents.console.monitor_humans import HumanDesk, WaitingRequest, WaitingWatch, human_url
from llama_agents.console.monitor_state import (
    MAX_EVENTS,
    Changes,
    Connection,
    Kind,
    MonitorState,
    is_waiting,
    short_id,
)
from llama_agents.errors import LlamaAgentsError
from llama_agents.messages.records import ServiceInfo, TaskEvent
from llama_agents.sdk import AsyncLlamaAgentsClient

TABLE_KINDS: dict[str | None, Kind] = {
    "tasks": "task",
    "services": "service",
    "requests": "request",
}
Item = TypeVar("Item")

#: How many tasks (the newest) the task list loads; later ones are added as they come.
TASK_PAGE = 200


def describe(exc: BaseException) -> str:
    """The library's errors explain themselves; anything else is named by its type."""
    if isinstance(exc, LlamaAgentsError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class MonitorScreen(Screen[None]):
    """The app's one screen; it owns tab and shift+tab, so it is where the footer finds them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "app.focus_next", "Next pane"),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False),
    ]


class MonitorApp(App[None]):
    """Watches and drives one control plane through `client` (which the caller owns).

    Args:
        client: the control plane's async client; the app never closes it.
        retry_initial, retry_max: seconds between reconnection attempts, doubling from the
            first to the last while the control plane stays unreachable.
        human_debounce: seconds to gather events before fetching human services' requests,
            so that a burst of events costs one fetch per service.
        human_settle: seconds after a fetch caused by task events to look once more: a human
            service takes its step from the queue a moment after the control plane says so.
    """

    TITLE = "llama-agents monitor"
    CSS = """
    #status { height: 1; padding: 0 1; background: $panel; }
    #body { height: 1fr; }
    #lists { width: 3fr; }
    .heading { height: 1; padding: 0 1; text-style: bold; background: $boost; }
    #services { height: auto; max-height: 12; }
    #requests { height: auto; max-height: 10; }
    #waiting-heading { background: $warning-darken-2; }
    #new-task.answering { border: tall $warning; }
    #tasks { height: 1fr; }
    #side { width: 2fr; border-left: solid $primary; }
    #details-pane { height: 1fr; padding: 0 1; }
    #events { height: 1fr; }
    #new-task { dock: bottom; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("c", "cancel_task", "Cancel task"),
        Binding("r", "reload", "Reload"),
        Binding("n", "focus_input", "New task"),
        Binding("a", "answer", "Answer"),
        Binding("escape", "leave", "Back"),
    ]

    def __init__(
        self,
        client: AsyncLlamaAgentsClient,
        *,
        retry_initial: float = 0.5,
        retry_max: float = 15.0,
        human_debounce: float = 0.1,
        human_settle: float = 1.0,
    ) -> None:
        super().__init__()
        self.client = client
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.human_debounce = human_debounce
        self.human_settle = human_settle
        self.state = MonitorState()
        # One HTTP client for every human service, with the client's API key; closed on exit.
        authorization = client.http.headers.get("authorization", "")
        self.desk = HumanDesk(api_key=authorization.removeprefix("Bearer ") or None)
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self.humans = WaitingWatch(
            self.desk,
            locate=lambda name: human_url(self.state.services.get(name)),
            listed=self._requests_listed,
            failed=self._requests_failed,
            debounce=human_debounce,
            settle=human_settle,
        )

    # -- layout -------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        return MonitorScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status")
        with Horizontal(id="body"):
            with Vertical(id="lists"):
                yield Static("Waiting for you", classes="heading", id="waiting-heading")
                yield DataTable(id="requests", cursor_type="row")
                yield Static("Services", classes="heading")
                yield DataTable(id="services", cursor_type="row")
                yield Static("Tasks", classes="heading", id="tasks-heading")
                yield DataTable(id="tasks", cursor_type="row")
            with Vertical(id="side"):
                with VerticalScroll(id="details-pane"):
                    yield Static(id="details")
                yield Static(classes="heading", id="events-heading")
                yield DataTable(id="events", cursor_type="row")
        yield Input(placeholder=render.TASK_PLACEHOLDER, id="new-task")
        yield Footer()

    def on_mount(self) -> None:
        # Kept, not queried each time: a worker finishing while the app closes still finds them.
        self.task_table: DataTable[Text] = self.query_one("#tasks", DataTable)
        self.service_table: DataTable[Text] = self.query_one("#services", DataTable)
        self.request_table: DataTable[Text] = self.query_one("#requests", DataTable)
        self.details_view: Static = self.query_one("#details", Static)
        self.status_bar: Static = self.query_one("#status", Static)
        self.input_box: Input = self.query_one("#new-task", Input)
        self.waiting_heading: Static = self.query_one("#waiting-heading", Static)
        self.tasks_heading: Static = self.query_one("#tasks-heading", Static)
        self.events_table: DataTable[Text] = self.query_one("#events", DataTable)
        self.events_heading: Static = self.query_one("#events-heading", Static)
        for table, columns in (
            (self.request_table, render.REQUEST_COLUMNS),
            (self.task_table, render.TASK_COLUMNS),
            (self.service_table, render.SERVICE_COLUMNS),
            (self.events_table, render.EVENT_COLUMNS),
        ):
            for label, key in columns:
                table.add_column(label, key=key)
        # A redraw of the ages only: the requests themselves are fetched on events.
        self.set_interval(1.0, self._draw_ages)
        self.task_table.focus()
        self._draw(Changes(details=True, status=True, waiting=True, events_heading=True))
        self._follow_events()

    async def on_unmount(self) -> None:
        await self.humans.aclose()
        await self.desk.aclose()

    # -- waiting on the app (for tests and scripts) -------------------------------------

    def _signal(self) -> None:
        """Wakes whoever waits in `wait_until`: the view just changed."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once `predicate()` holds, checking it after each change of the view."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    # -- drawing the state ----------------------------------------------------------------

    def _update(self) -> None:
        """Draw what the state changed since the last call, and start what it asked for."""
        self._draw(self.state.take_changes())

    def _draw(self, changes: Changes) -> None:
        state = self.state
        self._draw_rows(self.task_table, changes.tasks, state.tasks, render.task_cells)
        self._draw_rows(self.service_table, changes.services, state.services, render.service_cells)
        self._draw_rows(self.request_table, changes.requests, state.requests, render.request_cells)
        if changes.cursor is not None:
            kind, key = changes.cursor
            table = self.request_table if kind == "request" else self.task_table
            if key in table.rows:
                table.move_cursor(row=table.get_row_index(key))
        if changes.waiting:
            shown = state.offers_answers
            self.waiting_heading.display = self.request_table.display = shown
            self.waiting_heading.update(render.waiting_heading(state))
            self.tasks_heading.update(render.tasks_heading(state))
        if changes.input_mode:
            answering = state.answering is not None or state.answering_task is not None
            self.input_box.set_class(answering, "answering")
            self.input_box.placeholder = render.input_placeholder(state)
        self._draw_events(changes)
        if (changes.waiting or changes.input_mode) and self.is_running:
            self.refresh_bindings()  # which keys the footer offers depends on both
        if changes.details:
            self.details_view.update(render.details(state))
        if changes.status:
            url = self.client.control_plane_url
            self.sub_title = f"{url} · {state.connection.value}"
            self.status_bar.update(render.status_line(state, url))
        if changes.reload:
            self._reload()
        if changes.fetch_record is not None:
            self._fetch_record(changes.fetch_record)
        if changes.fetch_humans:
            self.humans.want(changes.fetch_humans, settle=changes.settle_humans)
        for name in sorted(changes.fetch_services):
            self._fetch_service(name)
        if changes.count_dead_letters:
            self._count_dead_letters()
        if changes.unfollow:
            self.workers.cancel_group(self, "task-events")
        if changes.follow is not None:
            self._follow_task(changes.follow)  # exclusive: the previous follower stops
        self._signal()

    def _draw_events(self, changes: Changes) -> None:
        """Append the selected task's new events (the latest MAX_EVENTS stay)."""
        table = self.events_table
        if changes.events_reset:
            table.clear()
        for event in changes.events_added:
            key = str(event.sequence)
            if key not in table.rows:
                table.add_row(*render.event_cells(event), key=key)
        while table.row_count > MAX_EVENTS:
            first = table.coordinate_to_cell_key(Coordinate(0, 0)).row_key
            table.remove_row(first)
        if changes.events_added and self.in_focus is not table:
            table.scroll_end(animate=False)  # a live log shows its latest lines
        if changes.events_heading or changes.events_reset:
            self.events_heading.update(render.events_heading(self.state))

    @staticmethod
    def _draw_rows(
        table: DataTable[Text],
        keys: Iterable[str],
        items: Mapping[str, Item],
        cells: Callable[[Item], tuple[Text, ...]],
    ) -> None:
        """Add, update or remove the rows of `keys` to match `items`."""
        columns = [column.key for column in table.ordered_columns]
        for key in keys:
            item = items.get(key)
            if item is None:
                if key in table.rows:
                    table.remove_row(key)
            elif key in table.rows:
                for column, cell in zip(columns, cells(item), strict=True):
                    table.update_cell(key, column, cell, update_width=True)
            else:
                table.add_row(*cells(item), key=key)

    def _draw_ages(self) -> None:
        for key, request in self.state.requests.items():
            if key in self.request_table.rows:
                self.request_table.update_cell(key, "age", render.age_cell(request))

    @property
    def status_text(self) -> str:
        """The status bar's text, as shown."""
        return str(self.status_bar.content)

    @property
    def details_text(self) -> str:
        """The details pane's text, as shown."""
        return str(self.details_view.content)

    @property
    def events_heading_text(self) -> str:
        """The events panel's heading, as shown."""
        return str(self.events_heading.content)

    def event_rows(self) -> list[tuple[str, ...]]:
        """The events panel's rows, as shown: (sequence, type, data)."""
        table = self.events_table
        return [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]

    # -- the event stream ---------------------------------------------------------------

    @work(name="events", group="events", exclusive=True)
    async def _follow_events(self) -> None:
        """Subscribe, load the lists, apply events; on any failure retry with backoff.

        The stream is opened before the lists are read, so no change falls in between.
        """
        delay = self.retry_initial
        while True:
            stream = self.client.events()
            try:
                await stream.open()
                await self._load()
                self.state.set_connection(Connection.CONNECTED)
                self._update()
                delay = self.retry_initial
                async for event in stream:
                    self.state.apply(event)
                    self._update()
                problem = "the control plane closed the event stream"
            except Exception as exc:  # whatever went wrong, the monitor stays up and retries
                problem = describe(exc)
            finally:
                await stream.aclose()
            retrying = f"{problem} (retrying in {delay:g}s)"
            self.state.set_connection(Connection.RECONNECTING, retrying)
            self._update()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            delay = min(delay * 2, self.retry_max)

    async def _load(self) -> None:
        """Read both lists; changes pushed while they were read win over what they say."""
        self.state.begin_load()
        tasks = await self.client.list_tasks(limit=TASK_PAGE)
        services = await self.client.list_services()
        self.state.loaded(tasks, services)
        self._update()

    # -- fetching: task records, and what human services list as waiting ----------------

    # Exclusive: a newer selection cancels the fetch for an older one.
    @work(group="details", exclusive=True)
    async def _fetch_record(self, task_id: str) -> None:
        try:
            record = await self.client.get_task(task_id)
        except LlamaAgentsError as exc:
            self.state.say(f"cannot read task {short_id(task_id)}: {exc}", error=True)
        else:
            self.state.record_fetched(record)
        self._update()

    @work(group="services")
    async def _fetch_service(self, name: str) -> None:
        """A service just registered: read whether anything consumes its queue."""
        try:
            info = await self.client.get_service(name)
        except LlamaAgentsError:
            return  # gone again, or unreachable: the next load says what is true
        if isinstance(info, ServiceInfo):
            self.state.service_fetched(info)
            self._update()

    # Exclusive: a newer count replaces one still on its way.
    @work(group="dead-letters", exclusive=True)
    async def _count_dead_letters(self) -> None:
        """Read how many dead letters wait (a failed task may be a dead-lettered step)."""
        try:
            count = await self.client.count_dead_letters()
        except LlamaAgentsError:
            return  # unreachable, or an older control plane: the count stays as it was
        self.state.dead_letters_counted(count)
        self._update()

    # -- the selected task's events -------------------------------------------------------

    # Exclusive: following another task (or none) stops this.
    @work(group="task-events", exclusive=True)
    async def _follow_task(self, task_id: str) -> None:
        state = self.state

        def received(event: TaskEvent) -> None:
            state.event_received(task_id, event)
            self._update()

        def trouble(problem: str) -> None:
            state.events_trouble(task_id, problem)
            self._update()

        await follow_task_events(
            self.client,
            task_id,
            received=received,
            trouble=trouble,
            after=state.events_seen if state.events_task == task_id else 0,
            finished=lambda: state.task_finished(task_id),
            retry_initial=self.retry_initial,
            retry_max=self.retry_max,
        )
        state.events_ended(task_id)
        self._update()

    def _requests_listed(self, service: str, url: str, listed: list[WaitingRequest]) -> None:
        self.state.listed_requests(service, url, listed)
        self._update()

    def _requests_failed(self, service: str, exc: Exception) -> None:
        # A broken service is a line in the status bar, no more.
        self.state.say(
            f"cannot list the requests waiting at {service}: {describe(exc)}", error=True
        )
        self._update()

    # -- selection ----------------------------------------------------------------------

    @property
    def in_focus(self) -> Widget | None:
        """The focused widget, or None once the app is closing: its screens are gone then,
        but messages already queued (a row highlighted, a worker's answer) still arrive."""
        return self.focused if self.screen_stack else None

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Only the table the user is in decides: rows added elsewhere move cursors too.
        kind = TABLE_KINDS.get(event.data_table.id)
        if kind and event.data_table is self.in_focus and event.row_key.value is not None:
            self.state.select(kind, event.row_key.value)
            self._update()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        table = event.widget
        kind = TABLE_KINDS.get(table.id)
        if kind and isinstance(table, DataTable) and table.row_count:
            row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            if row_key.value is not None:
                self.state.select(kind, row_key.value)
        self._update()  # where the keys go is part of the view

    @on(DataTable.RowSelected, "#tasks")
    def _task_chosen(self, event: DataTable.RowSelected) -> None:
        # Enter on a task waiting for input: answer it in the input box.
        task_id = event.row_key.value
        if task_id is not None and is_waiting(self.state.tasks.get(task_id)):
            self.state.select("task", task_id)
            self.action_answer()

    @on(DataTable.RowSelected, "#requests")
    def _request_chosen(self, event: DataTable.RowSelected) -> None:
        # Enter on a request: answer it in the input box.
        request = self.state.requests.get(event.row_key.value or "")
        if request is not None:
            self.state.select_request(request)
            self._update()
            self.input_box.focus()

    # -- actions ------------------------------------------------------------------------

    @on(Input.Submitted, "#new-task")
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        answering = self.state.answering
        answering_task = self.state.answering_task
        if not text:
            replying = answering is not None or answering_task is not None
            what = "the answer" if replying else "the task's input"
            then = " (esc: new task)" if replying else ""
            self.state.say(f"type {what}, then press Enter{then}", error=True)
            self._update()
            return
        event.input.clear()
        if answering_task is not None:
            self._respond(answering_task, text)
        elif answering is not None:
            self._answer(answering, text)
        else:
            self._create(text)

    def _give_back(self, text: str) -> None:
        """Put what was typed back in the input box rather than lose it (if it is empty)."""
        if not self.input_box.value:
            self.input_box.value = text

    @work(group="actions")
    async def _create(self, text: str) -> None:
        try:
            task_id = await self.client.create_task(text)
        except LlamaAgentsError as exc:
            self.state.say(f"cannot create the task: {exc}", error=True)
            self._give_back(text)
        else:
            self.state.created(task_id)
        self._update()

    @work(group="actions")
    async def _answer(self, request: WaitingRequest, text: str) -> None:
        try:
            accepted = await self.desk.answer(request, text)
        except Exception as exc:
            task = short_id(request.task_id)
            problem = f"cannot answer the request of task {task}: {describe(exc)}"
            self.state.say(problem, error=True)
            self._give_back(text)
            self._update()
            return
        self.state.answered(request, accepted)
        self._update()
        if accepted:
            self.task_table.focus()

    @work(group="actions")
    async def _respond(self, task_id: str, text: str) -> None:
        """Send the answer to the task's run through the control plane."""
        outcome = await answer_task(self.client, task_id, text)
        self.state.task_answered(task_id, outcome.sent, outcome.problem, final=outcome.final)
        if not outcome.sent and not outcome.final:
            self._give_back(text)  # worth sending again once the control plane is back
        self._update()
        if (outcome.sent or outcome.final) and self.in_focus is self.input_box:
            self.task_table.focus()

    def action_answer(self) -> None:
        """Answer the selected task's waiting run; else the selected request, else the one
        under the request list's cursor."""
        table = self.request_table
        under_cursor = None
        if table.row_count:
            under_cursor = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        chosen = self.state.choose_answer(under_cursor)
        self._update()
        if chosen is not None:
            self.input_box.focus()

    def action_cancel_task(self) -> None:
        task_id = self.state.task_to_cancel()
        self._update()
        if task_id is not None:
            self._cancel(task_id)

    @work(group="actions")
    async def _cancel(self, task_id: str) -> None:
        try:
            summary = await self.client.cancel_task(task_id)
        except LlamaAgentsError as exc:
            self.state.say(f"cannot cancel task {short_id(task_id)}: {exc}", error=True)
        else:
            self.state.cancelled(summary)
        self._update()

    def action_reload(self) -> None:
        if self.state.connection is Connection.CONNECTED:
            self._reload()
        else:
            self._wake.set()  # reconnect now rather than after the backoff: that reloads too

    @work(group="actions")
    async def _reload(self) -> None:
        try:
            await self._load()
        except LlamaAgentsError as exc:
            self.state.say(f"cannot reload: {exc}", error=True)
        else:
            self.state.say("reloaded")
        self._update()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Escape only means something (and is only offered) while typing or answering.
        if action == "leave":
            typing = self.in_focus is not None and self.in_focus.id == "new-task"
            answering = self.state.answering is not None or self.state.answering_task is not None
            return typing or answering
        if action == "answer":  # offered while something waits, or a human service is there
            return self.state.can_answer
        return True

    def action_leave(self) -> None:
        """Stop answering (the input box creates tasks again); from the box, to the lists."""
        self.state.set_answering(None)
        self._update()
        if self.in_focus is self.input_box:
            self.task_table.focus()

    def action_focus_input(self) -> None:
        self.state.set_answering(None)
        self._update()
        self.input_box.focus()
