"""The `llama-agents monitor` terminal app: a live view of a control plane's services and tasks.

The lists are loaded once, then kept current by the events the control plane pushes
(`GET /events`), so the view changes the moment a task does, without polling. Every network
call runs in a worker on the app's event loop: the UI never waits on the network, and a failure
is a line in the status bar, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar, Literal

from rich.text import Text
from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Static

from llama_agents.cli._common import when
from llama_agents.client import AsyncLlamaAgentsClient
from llama_agents.control_plane.events import ControlPlaneEvent
from llama_agents.control_plane.models import TaskRecord, TaskStatus, TaskSummary
from llama_agents.errors import LlamaAgentsError
from llama_agents.messages import ServiceDefinition

#: How many characters of a task id the list shows (a UUID's first group).
SHORT_ID = 8
#: The widest a task's input gets in the list before it is cut with an ellipsis.
INPUT_WIDTH = 60

TASK_COLUMNS = (("TASK", "id"), ("STATUS", "status"), ("UPDATED", "updated"), ("INPUT", "input"))
SERVICE_COLUMNS = (("SERVICE", "name"), ("DESCRIPTION", "description"), ("ADDRESS", "address"))

#: Colours of task and step statuses (the two share their values).
STATUS_STYLES = {
    "pending": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "magenta",
}

Selection = tuple[Literal["task", "service"], str]


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


class MonitorApp(App[None]):
    """Watches and drives one control plane through `client` (which the caller owns).

    Args:
        client: the control plane's async client; the app never closes it.
        retry_initial, retry_max: seconds between reconnection attempts, doubling from the
            first to the last while the control plane stays unreachable.
    """

    TITLE = "llama-agents monitor"
    CSS = """
    #status { height: 1; padding: 0 1; background: $panel; }
    #body { height: 1fr; }
    #lists { width: 3fr; }
    .heading { height: 1; padding: 0 1; text-style: bold; background: $boost; }
    #services { height: auto; max-height: 12; }
    #tasks { height: 1fr; }
    #details-pane { width: 2fr; border-left: solid $primary; padding: 0 1; }
    #new-task { dock: bottom; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("c", "cancel_task", "Cancel task"),
        Binding("r", "reload", "Reload"),
        Binding("tab", "focus_next", "Next pane"),
        Binding("shift+tab", "focus_previous", "Previous pane", show=False),
        Binding("escape", "focus_tasks", "Back to tasks", show=False),
    ]

    def __init__(
        self,
        client: AsyncLlamaAgentsClient,
        *,
        retry_initial: float = 0.5,
        retry_max: float = 15.0,
    ) -> None:
        super().__init__()
        self.client = client
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.tasks: dict[str, TaskSummary] = {}
        self.services: dict[str, ServiceDefinition] = {}
        self.selection: Selection | None = None
        self.record: TaskRecord | None = None
        self.connection = Connection.CONNECTING
        self.message = ""
        self.message_is_error = False
        self._touched_tasks: set[str] = set()
        self._touched_services: set[str] = set()
        self._select_when_seen: str | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()

    # -- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status")
        with Horizontal(id="body"):
            with Vertical(id="lists"):
                yield Static("Services", classes="heading")
                yield DataTable(id="services", cursor_type="row")
                yield Static("Tasks", classes="heading")
                yield DataTable(id="tasks", cursor_type="row")
            with VerticalScroll(id="details-pane"):
                yield Static(id="details")
        yield Input(placeholder="New task: type its input and press Enter", id="new-task")
        yield Footer()

    @property
    def task_table(self) -> DataTable[Text]:
        return self.query_one("#tasks", DataTable)

    @property
    def service_table(self) -> DataTable[Text]:
        return self.query_one("#services", DataTable)

    def on_mount(self) -> None:
        for label, key in TASK_COLUMNS:
            self.task_table.add_column(label, key=key)
        for label, key in SERVICE_COLUMNS:
            self.service_table.add_column(label, key=key)
        self.task_table.focus()
        self._render_status()
        self._render_details()
        self.run_worker(self._follow_events, name="events", group="events", exclusive=True)

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
                self._set_connection(Connection.CONNECTED, "")
                delay = self.retry_initial
                async for event in stream:
                    self._apply(event)
                problem = "the control plane closed the event stream"
            except Exception as exc:  # whatever went wrong, the monitor stays up and retries
                problem = describe(exc)
            finally:
                await stream.aclose()
            self._set_connection(
                Connection.RECONNECTING, f"{problem} (retrying in {delay:g}s)", error=True
            )
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
        self._refresh_details()
        self._signal()

    def _apply(self, event: ControlPlaneEvent) -> None:
        if event.kind == "task" and event.task is not None:
            self._touched_tasks.add(event.task.task_id)
            self._put_task(event.task)
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
        if self.selection == ("service", name):
            self._render_details()

    def _drop_service(self, name: str) -> None:
        self.services.pop(name, None)
        if name in self.service_table.rows:
            self.service_table.remove_row(name)
        if self.selection == ("service", name):
            self._render_details()

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

    def _select_in(self, table: DataTable[Text], key: str) -> None:
        kind: Literal["task", "service"] = "task" if table.id == "tasks" else "service"
        if self.selection != (kind, key):
            self.selection = (kind, key)
            self._refresh_details()

    def _refresh_details(self) -> None:
        """Render what is known now; for a task, fetch its full record (steps, result)."""
        self._render_details()
        if self.selection is not None and self.selection[0] == "task":
            task_id = self.selection[1]
            # A factory, not a coroutine: a fetch superseded before it started is never created.
            fetch = functools.partial(self._fetch_record, task_id)
            self.run_worker(fetch, group="details", exclusive=True)

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
        self.query_one("#details", Static).update(self._details())
        self._signal()

    def _details(self) -> Text:
        if self.selection is None:
            return Text("Select a task or a service to see its details.", style="dim")
        kind, key = self.selection
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

    # -- status bar ---------------------------------------------------------------------

    def _set_connection(self, state: Connection, message: str, *, error: bool = False) -> None:
        self.connection = state
        self._say(message, error=error)

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
        if self.message:
            line.append("  ")
            line.append(self.message, style="red" if self.message_is_error else "")
        self.query_one("#status", Static).update(line)
        self._signal()

    @property
    def status_text(self) -> str:
        """The status bar's text, as shown."""
        return str(self.query_one("#status", Static).content)

    @property
    def details_text(self) -> str:
        """The details pane's text, as shown."""
        return str(self.query_one("#details", Static).content)

    # -- actions ------------------------------------------------------------------------

    @on(Input.Submitted, "#new-task")
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self._say("type the task's input, then press Enter", error=True)
            return
        event.input.clear()
        self.run_worker(functools.partial(self._create, text), group="actions")

    async def _create(self, text: str) -> None:
        try:
            task_id = await self.client.create_task(text)
        except LlamaAgentsError as exc:
            self._say(f"cannot create the task: {exc}", error=True)
            box = self.query_one("#new-task", Input)
            if not box.value:
                box.value = text  # give the text back rather than lose it
            return
        self._say(f"created task {short_id(task_id)}")
        # The pushed event may come before or after this answer: select it once listed.
        if task_id in self.tasks:
            self.select_task(task_id)
        else:
            self._select_when_seen = task_id

    def action_cancel_task(self) -> None:
        if self.selection is None or self.selection[0] != "task":
            self._say("select a task to cancel", error=True)
            return
        self.run_worker(functools.partial(self._cancel, self.selection[1]), group="actions")

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
            self._say(f"task {short_id(task_id)} had already finished ({summary.status.value})")

    def action_reload(self) -> None:
        if self.connection is Connection.CONNECTED:
            self.run_worker(self._reload, group="actions")
        else:
            self._wake.set()  # reconnect now rather than after the backoff: that reloads too

    async def _reload(self) -> None:
        try:
            await self._load()
        except LlamaAgentsError as exc:
            self._say(f"cannot reload: {exc}", error=True)
            return
        self._say("reloaded")

    def action_focus_tasks(self) -> None:
        self.task_table.focus()


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
