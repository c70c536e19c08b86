"""The `llama-agents monitor` terminal app: a live view of a control plane's services and tasks.

The lists are loaded once, then kept current by the events the control plane pushes
(`GET /events`), so the view changes the moment a task does, without polling. Every network
call runs in a worker on the app's event loop: the UI never waits on the network, and a failure
is a line in the status bar, never a traceback.

Human services (`kind == "human"`) get a "Waiting for you" list: the requests waiting for a
person at each of them, fetched from the services themselves whenever an event says the list
may have changed (a task moved, a service came or went, a reload). Selecting a request turns
the input box into its answer box.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static

from llama_agents.console._common import when
from llama_agents.console.monitor_humans import (
    HumanDesk,
    WaitingRequest,
    age,
    human_url,
)
from llama_agents.control_plane.events import ControlPlaneEvent
from llama_agents.control_plane.models import TaskRecord, TaskStatus, TaskSummary
from llama_agents.errors import LlamaAgentsError
from llama_agents.messages import ServiceDefinition
from llama_agents.sdk import AsyncLlamaAgentsClient

#: How many characters of a task id the list shows (a UUID's first group).
SHORT_ID = 8
#: The widest a task's input gets in the list before it is cut with an ellipsis.
INPUT_WIDTH = 60

TASK_COLUMNS = (("TASK", "id"), ("STATUS", "status"), ("UPDATED", "updated"), ("INPUT", "input"))
SERVICE_COLUMNS = (("SERVICE", "name"), ("DESCRIPTION", "description"), ("ADDRESS", "address"))
REQUEST_COLUMNS = (("SERVICE", "service"), ("TASK", "task"), ("INPUT", "input"), ("AGE", "age"))

TASK_PLACEHOLDER = "New task: type its input and press Enter"
ANSWER_PLACEHOLDER = "Answer the selected request… (task {task}; Enter sends, esc: new task)"
GONE_PLACEHOLDER = "The selected request (task {task}) no longer waits (esc: new task)"

#: Colours of task and step statuses (the two share their values).
STATUS_STYLES = {
    "pending": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "magenta",
}

Selection = tuple[Literal["task", "service", "request"], str]
TABLE_KINDS: dict[str | None, Literal["task", "service", "request"]] = {
    "tasks": "task",
    "services": "service",
    "requests": "request",
}


class Connection(StrEnum):
    """Where the app's event stream is: the status bar shows it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


CONNECTION_STYLES = {
    Connection.CONNECTING: "yellow",
    Connection.CONNECTED: "green",
    Connection.RECONNECTING: "bold yellow",
}


def short_id(task_id: str) -> str:
    return task_id[:SHORT_ID]


def clock(moment: datetime) -> str:
    """A list's timestamp: the time of day (UTC), the date being mostly today's."""
    return moment.astimezone(UTC).strftime("%H:%M:%SZ")


def one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


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
    #details-pane { width: 2fr; border-left: solid $primary; padding: 0 1; }
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
        self.tasks: dict[str, TaskSummary] = {}
        self.services: dict[str, ServiceDefinition] = {}
        self.selection: Selection | None = None
        self.requests: dict[str, WaitingRequest] = {}  # by `WaitingRequest.key`
        self.answering: WaitingRequest | None = None  # set: the input box answers it
        # One HTTP client for every human service, with the client's API key; closed on exit.
        authorization = client.http.headers.get("authorization", "")
        self.desk = HumanDesk(api_key=authorization.removeprefix("Bearer ") or None)
        self.record: TaskRecord | None = None
        self.connection = Connection.CONNECTING
        self.problem = ""  # why the event stream is down; shown until it is back
        self.message = ""  # the last action's outcome; shown until the next action
        self.message_is_error = False
        self._touched_tasks: set[str] = set()
        self._touched_services: set[str] = set()
        self._select_when_seen: str | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._stale_humans: set[str] = set()  # human services whose requests to fetch
        self._fetching_humans = False
        self._settling: set[str] = set()  # human services to look at once more, soon
        self._settle_timer: Timer | None = None

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
                yield Static("Tasks", classes="heading")
                yield DataTable(id="tasks", cursor_type="row")
            with VerticalScroll(id="details-pane"):
                yield Static(id="details")
        yield Input(placeholder=TASK_PLACEHOLDER, id="new-task")
        yield Footer()

    def on_mount(self) -> None:
        # Kept, not queried each time: a worker finishing while the app closes still finds them.
        self.task_table: DataTable[Text] = self.query_one("#tasks", DataTable)
        self.service_table: DataTable[Text] = self.query_one("#services", DataTable)
        self.details_view: Static = self.query_one("#details", Static)
        self.status_bar: Static = self.query_one("#status", Static)
        self.input_box: Input = self.query_one("#new-task", Input)
        self.request_table: DataTable[Text] = self.query_one("#requests", DataTable)
        self.waiting_heading: Static = self.query_one("#waiting-heading", Static)
        for label, key in REQUEST_COLUMNS:
            self.request_table.add_column(label, key=key)
        self._render_waiting_section()
        # A redraw of the ages only: the requests themselves are fetched on events.
        self.set_interval(1.0, self._render_ages)
        for label, key in TASK_COLUMNS:
            self.task_table.add_column(label, key=key)
        for label, key in SERVICE_COLUMNS:
            self.service_table.add_column(label, key=key)
        self.task_table.focus()
        self._render_status()
        self._render_details()
        self._follow_events()

    async def on_unmount(self) -> None:
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
                self._set_connection(Connection.CONNECTED)
                delay = self.retry_initial
                async for event in stream:
                    self._apply(event)
                problem = "the control plane closed the event stream"
            except Exception as exc:  # whatever went wrong, the monitor stays up and retries
                problem = describe(exc)
            finally:
                await stream.aclose()
            self._set_connection(Connection.RECONNECTING, f"{problem} (retrying in {delay:g}s)")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            delay = min(delay * 2, self.retry_max)

    async def _load(self) -> None:
        """Read both lists; changes pushed while they were read win over what they say."""
        self._touched_tasks.clear()
        self._touched_services.clear()
        tasks = await self.client.list_tasks()
        services = await self.client.list_services()

        loaded: dict[str, TaskSummary] = {}
        for summary in sorted(tasks, key=lambda t: t.created_at):
            current = self.tasks.get(summary.task_id)
            newer = current is not None and current.updated_at > summary.updated_at
            loaded[summary.task_id] = current if newer and current is not None else summary
        for task_id in self._touched_tasks - loaded.keys():
            loaded[task_id] = self.tasks[task_id]

        listed = {s.service_name: s for s in services}
        for name in self._touched_services:
            if name in self.services:
                listed[name] = self.services[name]
            else:
                listed.pop(name, None)

        for task_id in [t for t in self.tasks if t not in loaded]:
            del self.tasks[task_id]
            self.task_table.remove_row(task_id)
        for summary in loaded.values():
            self._put_task(summary)
        for name in [s for s in self.services if s not in listed]:
            self._drop_service(name)
        for definition in sorted(listed.values(), key=lambda d: d.service_name):
            self._put_service(definition)
        self._refresh_humans()
        self._refresh_details()
        self._signal()

    def _apply(self, event: ControlPlaneEvent) -> None:
        if event.kind == "resync":
            self._reload()  # the control plane dropped events for us: reload the lists
            return
        if event.kind == "task" and event.task is not None:
            self._touched_tasks.add(event.task.task_id)
            self._put_task(event.task)
            # A step may have been sent to a human service, or answered.
            self._refresh_humans(settle=True)
        elif event.kind == "service" and event.action == "registered" and event.service:
            self._touched_services.add(event.service.service_name)
            self._put_service(event.service)
        elif event.kind == "service" and event.action == "deregistered":
            name = event.service_name or (event.service.service_name if event.service else None)
            if name is not None:
                self._touched_services.add(name)
                self._drop_service(name)
        self._signal()

    # -- the lists ----------------------------------------------------------------------

    def _put_task(self, summary: TaskSummary) -> None:
        """Add or update a task's row; an older copy of a task never replaces a newer one."""
        task_id = summary.task_id
        current = self.tasks.get(task_id)
        if current is not None and summary.updated_at < current.updated_at:
            return
        self.tasks[task_id] = summary
        cells = (
            Text(short_id(task_id)),
            Text(summary.status.value, style=STATUS_STYLES.get(summary.status.value, "")),
            Text(clock(summary.updated_at)),
            Text(one_line(summary.input, INPUT_WIDTH)),
        )
        table = self.task_table
        if task_id in table.rows:
            for (_, column), cell in zip(TASK_COLUMNS, cells, strict=True):
                table.update_cell(task_id, column, cell, update_width=True)
        else:
            table.add_row(*cells, key=task_id)
        if task_id == self._select_when_seen:
            self._select_when_seen = None
            self.select_task(task_id)
        elif self.selection == ("task", task_id):
            self._refresh_details()

    def _put_service(self, definition: ServiceDefinition) -> None:
        name = definition.service_name
        self.services[name] = definition
        address = f"{definition.host or '?'}:{definition.port}" if definition.port else ""
        cells = (Text(name), Text(one_line(definition.description, 40)), Text(address))
        table = self.service_table
        if name in table.rows:
            for (_, column), cell in zip(SERVICE_COLUMNS, cells, strict=True):
                table.update_cell(name, column, cell, update_width=True)
        else:
            table.add_row(*cells, key=name)
        if human_url(definition) is None:
            self._set_requests(name, [])
        else:
            self._refresh_humans([name])
        self._render_waiting_section()
        if self.selection == ("service", name):
            self._render_details()

    def _drop_service(self, name: str) -> None:
        self.services.pop(name, None)
        if name in self.service_table.rows:
            self.service_table.remove_row(name)
        self._stale_humans.discard(name)
        self._set_requests(name, [])
        self._render_waiting_section()
        if self.selection == ("service", name):
            self._render_details()

    # -- the requests waiting at human services ------------------------------------------

    def _human_services(self) -> list[str]:
        return [name for name, d in self.services.items() if human_url(d) is not None]

    def _refresh_humans(self, names: Iterable[str] | None = None, *, settle: bool = False) -> None:
        """Have the requests of these human services (default: all) fetched soon.

        Debounced: what is asked while a fetch is due joins it, so a burst of events costs
        one fetch per service. `settle` looks once more `human_settle` seconds later.
        """
        humans = set(self._human_services())
        wanted = humans if names is None else humans & set(names)
        if not wanted:
            return
        self._stale_humans |= wanted
        if not self._fetching_humans:
            self._fetching_humans = True
            self._fetch_humans()
        if settle:
            self._settling |= wanted
            if self._settle_timer is None:
                self._settle_timer = self.set_timer(self.human_settle, self._settled)

    def _settled(self) -> None:
        """The one look after a burst of task events, once its services had time to act."""
        names, self._settling, self._settle_timer = self._settling, set(), None
        self._refresh_humans(names)

    @work(group="humans")
    async def _fetch_humans(self) -> None:
        """Fetch the stale services' requests, after the debounce, until none is stale."""
        try:
            while self._stale_humans:
                await asyncio.sleep(self.human_debounce)
                names, self._stale_humans = self._stale_humans, set()
                await asyncio.gather(*(self._fetch_requests(name) for name in sorted(names)))
        finally:
            self._fetching_humans = False

    async def _fetch_requests(self, name: str) -> None:
        url = human_url(self.services.get(name))
        if url is None:
            return
        try:
            listed = await self.desk.waiting(name, url)
        except Exception as exc:  # a broken service is a line in the status bar, no more
            self._say(f"cannot list the requests waiting at {name}: {describe(exc)}", error=True)
            return
        if human_url(self.services.get(name)) == url:  # still that service, still there
            self._set_requests(name, listed)

    def _set_requests(self, service: str, listed: list[WaitingRequest]) -> None:
        """Make the list show exactly `listed` for `service` (kept in order, oldest first)."""
        keep = {request.key: request for request in listed}
        gone = [k for k, r in self.requests.items() if r.service == service and k not in keep]
        if not gone and keep.keys() <= self.requests.keys():
            return
        table = self.request_table
        for key in gone:
            del self.requests[key]
            if key in table.rows:
                table.remove_row(key)
        for key, request in keep.items():
            if key not in self.requests:
                self.requests[key] = request
                table.add_row(*self._request_cells(request), key=key)
        self._render_waiting_section()
        self._render_input_mode()
        if self.selection is not None and self.selection[0] == "request":
            self._render_details()
        self._signal()

    def _request_cells(self, request: WaitingRequest) -> tuple[Text, ...]:
        return (
            Text(request.service),
            Text(short_id(request.task_id)),
            Text(one_line(request.input, INPUT_WIDTH)),
            Text(age(request.created_at), style="yellow"),
        )

    def _render_ages(self) -> None:
        for key, request in self.requests.items():
            if key in self.request_table.rows:
                self.request_table.update_cell(key, "age", Text(age(request.created_at), "yellow"))

    def _render_waiting_section(self) -> None:
        """The list is there while a human service is registered, its count in the heading."""
        shown = bool(self._human_services() or self.requests)
        self.waiting_heading.display = shown
        self.request_table.display = shown
        count = len(self.requests)
        self.waiting_heading.update(f"Waiting for you ({count})" if count else "Waiting for you")
        self._refresh_footer()

    def _set_answering(self, request: WaitingRequest | None) -> None:
        """Switch the input box between answering `request` and creating tasks (None)."""
        before = self.answering.key if self.answering is not None else None
        self.answering = request
        if before != (request.key if request is not None else None):
            self._render_input_mode()
            self._refresh_footer()
            self._signal()

    def _refresh_footer(self) -> None:
        """Which keys the footer offers depends on the lists (not while the app closes)."""
        if self.is_running:
            self.refresh_bindings()

    def _render_input_mode(self) -> None:
        request = self.answering
        box = self.input_box
        box.set_class(request is not None, "answering")
        if request is None:
            box.placeholder = TASK_PLACEHOLDER
        elif request.key in self.requests:
            box.placeholder = ANSWER_PLACEHOLDER.format(task=short_id(request.task_id))
        else:
            box.placeholder = GONE_PLACEHOLDER.format(task=short_id(request.task_id))

    # -- selection and details ----------------------------------------------------------

    def select_task(self, task_id: str) -> None:
        """Show the task's details and put the task list's cursor on it."""
        self.selection = ("task", task_id)
        table = self.task_table
        if task_id in table.rows:
            table.move_cursor(row=table.get_row_index(task_id))
        self._refresh_details()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Only the table the user is in decides: rows added elsewhere move cursors too.
        if event.data_table is self.focused and event.row_key.value is not None:
            self._select_in(event.data_table, event.row_key.value)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        table = event.widget
        if isinstance(table, DataTable) and table.row_count:
            row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            if row_key.value is not None:
                self._select_in(table, row_key.value)
        self._signal()  # where the keys go is part of the view

    def _select_in(self, table: DataTable[Text], key: str) -> None:
        kind = TABLE_KINDS[table.id]
        # Selecting a request makes the input box its answer box; anything else, a task's.
        self._set_answering(self.requests.get(key) if kind == "request" else None)
        if self.selection != (kind, key):
            self.selection = (kind, key)
            self._refresh_details()

    def _refresh_details(self) -> None:
        """Render what is known now; for a task, fetch its full record (steps, result)."""
        self._render_details()
        if self.selection is not None and self.selection[0] == "task":
            task_id = self.selection[1]
            self._fetch_record(task_id)

    # Exclusive: a newer selection cancels the fetch for an older one.
    @work(group="details", exclusive=True)
    async def _fetch_record(self, task_id: str) -> None:
        try:
            record = await self.client.get_task(task_id)
        except LlamaAgentsError as exc:
            self._say(f"cannot read task {short_id(task_id)}: {exc}", error=True)
            return
        if self.selection == ("task", task_id):
            self.record = record
            self._render_details()

    def _render_details(self) -> None:
        self.details_view.update(self._details())
        self._signal()

    def _details(self) -> Text:
        if self.selection is None:
            return Text("Select a task or a service to see its details.", style="dim")
        kind, key = self.selection
        if kind == "request":
            return self._request_details(key)
        if kind == "service":
            definition = self.services.get(key)
            if definition is None:
                return Text(f"Service {key} is no longer registered.", style="dim")
            return fields(
                [
                    ("Service", definition.service_name),
                    ("Description", definition.description),
                    ("Host", definition.host or ""),
                    ("Port", str(definition.port or "")),
                    ("Prompt", f"{len(definition.prompt)} message(s)" if definition.prompt else ""),
                ]
            )
        record = self.record if self.record is not None and self.record.task_id == key else None
        summary = self.tasks.get(key)
        if summary is not None and (record is None or summary.updated_at > record.updated_at):
            return task_details(summary, None)  # the record is on its way
        if record is not None:
            return task_details(record.summary(), record)
        return Text(f"Task {key} is not known to the control plane.", style="dim")

    def _request_details(self, key: str) -> Text:
        request = self.requests.get(key)
        if request is None:
            return Text("This request no longer waits: it was answered or withdrawn.", "dim")
        text = fields(
            [
                ("Request", request.id_),
                ("Service", request.service),
                ("Task", request.task_id),
                ("Waiting since", when(request.created_at)),
                ("Input", request.input),
            ]
        )
        text.append("\nPrompt\n", style="bold")
        text.append(f"{request.prompt}\n")
        text.append("\nType the answer in the box below and press Enter.\n", style="dim")
        return text

    # -- status bar ---------------------------------------------------------------------

    def _set_connection(self, state: Connection, problem: str = "") -> None:
        self.connection = state
        self.problem = problem
        self._render_status()

    def _say(self, message: str, *, error: bool = False) -> None:
        self.message = message
        self.message_is_error = error
        self._render_status()

    def _render_status(self) -> None:
        self.sub_title = f"{self.client.control_plane_url} · {self.connection.value}"
        line = Text.assemble(
            ("● ", CONNECTION_STYLES[self.connection]),
            (self.connection.value, CONNECTION_STYLES[self.connection]),
            f"  {self.client.control_plane_url}",
        )
        if self.problem:
            line.append(f"  {self.problem}", style="red")
        if self.message:
            line.append("  │  ")
            line.append(self.message, style="red" if self.message_is_error else "")
        self.status_bar.update(line)
        self._signal()

    @property
    def status_text(self) -> str:
        """The status bar's text, as shown."""
        return str(self.status_bar.content)

    @property
    def details_text(self) -> str:
        """The details pane's text, as shown."""
        return str(self.details_view.content)

    # -- actions ------------------------------------------------------------------------

    @on(Input.Submitted, "#new-task")
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if self.answering is not None:
            if not text:
                self._say("type the answer, then press Enter (esc: new task)", error=True)
                return
            event.input.clear()
            self._answer(self.answering, text)
            return
        if not text:
            self._say("type the task's input, then press Enter", error=True)
            return
        event.input.clear()
        self._create(text)

    @work(group="actions")
    async def _create(self, text: str) -> None:
        try:
            task_id = await self.client.create_task(text)
        except LlamaAgentsError as exc:
            self._say(f"cannot create the task: {exc}", error=True)
            if not self.input_box.value:
                self.input_box.value = text  # give the text back rather than lose it
            return
        self._say(f"created task {short_id(task_id)}")
        # The pushed event may come before or after this answer: select it once listed.
        if task_id in self.tasks:
            self.select_task(task_id)
        else:
            self._select_when_seen = task_id

    @work(group="actions")
    async def _answer(self, request: WaitingRequest, text: str) -> None:
        task = short_id(request.task_id)
        try:
            answered = await self.desk.answer(request, text)
        except Exception as exc:
            self._say(f"cannot answer the request of task {task}: {describe(exc)}", error=True)
            if not self.input_box.value:
                self.input_box.value = text  # give the answer back rather than lose it
            return
        if self.answering is not None and self.answering.key == request.key:
            self._set_answering(None)
        others = [r for r in self.requests.values() if r.service == request.service]
        self._set_requests(request.service, [r for r in others if r.key != request.key])
        self._refresh_humans([request.service])  # the service's word on what still waits
        if not answered:
            self._say(
                f"the request of task {task} was already answered (by someone else?); "
                "yours was not needed"
            )
            return
        self._say(f"answered the request of task {task} at {request.service}")
        self.select_task(request.task_id)  # to watch the task go on with the answer
        self.task_table.focus()

    def action_answer(self) -> None:
        """Answer the selected request, else the one under the request list's cursor."""
        table = self.request_table
        key: str | None = None
        if self.selection is not None and self.selection[0] == "request":
            key = self.selection[1]
        if key not in self.requests and table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        request = self.requests.get(key) if key is not None else None
        if request is None:
            self._say("nothing is waiting for you", error=True)
            return
        self._select_request(request)
        self.input_box.focus()

    @on(DataTable.RowSelected, "#requests")
    def _request_chosen(self, event: DataTable.RowSelected) -> None:
        # Enter on a request: answer it in the input box.
        if event.row_key.value in self.requests:
            self._select_request(self.requests[event.row_key.value])
            self.input_box.focus()

    def _select_request(self, request: WaitingRequest) -> None:
        table = self.request_table
        if request.key in table.rows:
            table.move_cursor(row=table.get_row_index(request.key))
        self._set_answering(request)
        if self.selection != ("request", request.key):
            self.selection = ("request", request.key)
            self._render_details()

    def action_cancel_task(self) -> None:
        if self.selection is None or self.selection[0] != "task":
            self._say("select a task to cancel", error=True)
            return
        task_id = self.selection[1]
        known = self.tasks.get(task_id)
        if known is not None and known.status.finished:
            self._say(f"task {short_id(task_id)} has already finished ({known.status.value})")
            return
        self._cancel(task_id)

    @work(group="actions")
    async def _cancel(self, task_id: str) -> None:
        try:
            summary = await self.client.cancel_task(task_id)
        except LlamaAgentsError as exc:
            self._say(f"cannot cancel task {short_id(task_id)}: {exc}", error=True)
            return
        self._put_task(summary)
        if summary.status is TaskStatus.CANCELLED:
            self._say(f"cancelled task {short_id(task_id)}")
        else:
            self._say(f"task {short_id(task_id)} has already finished ({summary.status.value})")

    def action_reload(self) -> None:
        if self.connection is Connection.CONNECTED:
            self._reload()
        else:
            self._wake.set()  # reconnect now rather than after the backoff: that reloads too

    @work(group="actions")
    async def _reload(self) -> None:
        try:
            await self._load()
        except LlamaAgentsError as exc:
            self._say(f"cannot reload: {exc}", error=True)
            return
        self._say("reloaded")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Escape only means something (and is only offered) while typing or answering.
        if action == "leave":
            typing = self.focused is not None and self.focused.id == "new-task"
            return typing or self.answering is not None
        if action == "answer":  # offered while a human service is registered
            return bool(self._human_services() or self.requests)
        return True

    def action_leave(self) -> None:
        """Stop answering (the input box creates tasks again); from the box, to the lists."""
        self._set_answering(None)
        if self.focused is self.input_box:
            self.task_table.focus()

    def action_focus_input(self) -> None:
        self._set_answering(None)
        self.input_box.focus()


def fields(rows: list[tuple[str, str]]) -> Text:
    """`label  value` lines, aligned; empty values are left out."""
    shown = [(label, value) for label, value in rows if value]
    width = max((len(label) for label, _ in shown), default=0)
    text = Text()
    for label, value in shown:
        text.append(f"{label:<{width}}  ", style="bold")
        text.append(f"{value}\n")
    return text


def task_details(summary: TaskSummary, record: TaskRecord | None) -> Text:
    """A task's status, times, input, steps and outcome (steps need the full record)."""
    text = fields(
        [
            ("Task", summary.task_id),
            ("Status", summary.status.value),
            ("Created", when(summary.created_at)),
            ("Updated", when(summary.updated_at)),
            ("Input", summary.input),
        ]
    )
    text.append("\nSteps\n", style="bold")
    if record is None:
        text.append(f"  {summary.steps} step(s); loading…\n", style="dim")
    elif not record.steps:
        text.append("  (none yet)\n", style="dim")
    for step in record.steps if record is not None else []:
        done = f"  {when(step.completed_at)}" if step.completed_at else ""
        text.append(f"  {step.service}  ")
        text.append(step.status.value, style=STATUS_STYLES.get(step.status.value, ""))
        text.append(f"{done}\n")
    error = record.error if record is not None else summary.error
    if record is not None and record.result is not None and record.result.error is None:
        text.append("\nResult\n", style="bold green")
        text.append(f"{record.result.result}\n")
    if error:
        text.append("\nError\n", style="bold red")
        text.append(f"{error}\n")
    return text
