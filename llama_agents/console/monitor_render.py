"""How the monitor shows its state: table cells, the details pane, the status line.

Pure functions of `MonitorState` (and its items) that return rich `Text`: what the app puts in
its widgets, testable without a screen.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.text import Text

from llama_agents.console._common import when
from llama_agents.console.monitor_humans import WaitingRequest, age
from llama_agents.console.monitor_state import Connection, MonitorState, short_id
from llama_agents.control_plane.models import TaskRecord, TaskSummary
from llama_agents.messages import ServiceDefinition

#: The widest a task's input gets in a list before it is cut with an ellipsis.
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

CONNECTION_STYLES = {
    Connection.CONNECTING: "yellow",
    Connection.CONNECTED: "green",
    Connection.RECONNECTING: "bold yellow",
}


def clock(moment: datetime) -> str:
    """A list's timestamp: the time of day (UTC), the date being mostly today's."""
    return moment.astimezone(UTC).strftime("%H:%M:%SZ")


def one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -- the lists ----------------------------------------------------------------------------


def task_cells(summary: TaskSummary) -> tuple[Text, ...]:
    return (
        Text(short_id(summary.task_id)),
        Text(summary.status.value, style=STATUS_STYLES.get(summary.status.value, "")),
        Text(clock(summary.updated_at)),
        Text(one_line(summary.input, INPUT_WIDTH)),
    )


def service_cells(definition: ServiceDefinition) -> tuple[Text, ...]:
    address = f"{definition.host or '?'}:{definition.port}" if definition.port else ""
    return (
        Text(definition.service_name),
        Text(one_line(definition.description, 40)),
        Text(address),
    )


def request_cells(request: WaitingRequest) -> tuple[Text, ...]:
    return (
        Text(request.service),
        Text(short_id(request.task_id)),
        Text(one_line(request.input, INPUT_WIDTH)),
        age_cell(request),
    )


def age_cell(request: WaitingRequest) -> Text:
    return Text(age(request.created_at), style="yellow")


def waiting_heading(state: MonitorState) -> str:
    count = len(state.requests)
    return f"Waiting for you ({count})" if count else "Waiting for you"


def input_placeholder(state: MonitorState) -> str:
    """What the input box invites: a new task's input, or the answer to a request."""
    request = state.answering
    if request is None:
        return TASK_PLACEHOLDER
    if request.key in state.requests:
        return ANSWER_PLACEHOLDER.format(task=short_id(request.task_id))
    return GONE_PLACEHOLDER.format(task=short_id(request.task_id))


# -- the status line -----------------------------------------------------------------------


def status_line(state: MonitorState, url: str) -> Text:
    style = CONNECTION_STYLES[state.connection]
    line = Text.assemble(("● ", style), (state.connection.value, style), f"  {url}")
    if state.problem:
        line.append(f"  {state.problem}", style="red")
    if state.message:
        line.append("  │  ")
        line.append(state.message, style="red" if state.message_is_error else "")
    return line


# -- the details pane ----------------------------------------------------------------------


def details(state: MonitorState) -> Text:
    """The details of the selected task, service or request."""
    if state.selection is None:
        return Text("Select a task or a service to see its details.", style="dim")
    kind, key = state.selection
    if kind == "request":
        return request_details(state.requests.get(key))
    if kind == "service":
        return service_details(key, state.services.get(key))
    record = state.record if state.record is not None and state.record.task_id == key else None
    summary = state.tasks.get(key)
    if summary is not None and (record is None or summary.updated_at > record.updated_at):
        return task_details(summary, None)  # the record is on its way
    if record is not None:
        return task_details(record.summary(), record)
    return Text(f"Task {key} is not known to the control plane.", style="dim")


def fields(rows: list[tuple[str, str]]) -> Text:
    """`label  value` lines, aligned; empty values are left out."""
    shown = [(label, value) for label, value in rows if value]
    width = max((len(label) for label, _ in shown), default=0)
    text = Text()
    for label, value in shown:
        text.append(f"{label:<{width}}  ", style="bold")
        text.append(f"{value}\n")
    return text


def service_details(name: str, definition: ServiceDefinition | None) -> Text:
    if definition is None:
        return Text(f"Service {name} is no longer registered.", style="dim")
    return fields(
        [
            ("Service", definition.service_name),
            ("Description", definition.description),
            ("Host", definition.host or ""),
            ("Port", str(definition.port or "")),
            ("Prompt", f"{len(definition.prompt)} message(s)" if definition.prompt else ""),
        ]
    )


def request_details(request: WaitingRequest | None) -> Text:
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
