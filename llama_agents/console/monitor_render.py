"""How the monitor shows its state: table cells, the details pane, the events panel, the
status line.

Pure functions of `MonitorState` (and its items) that return rich `Text`: what the app puts in
its widgets, testable without a screen.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rich.text import Text

from llama_agents.console._common import when
from llama_agents.console.monitor_humans import WaitingRequest, age
from llama_agents.console.monitor_state import (
    Connection,
    MonitorState,
    is_waiting,
    live,
    short_id,
)
from llama_agents.control_plane.models import TaskRecord, TaskSummary
from llama_agents.messages import ServiceDefinition
from llama_agents.messages.records import ServiceInfo, TaskEvent, prompt_text

#: The widest a task's input gets in a list before it is cut with an ellipsis.
INPUT_WIDTH = 60
#: The widest an event's data gets in the events panel.
EVENT_DATA_WIDTH = 80

TASK_COLUMNS = (("TASK", "id"), ("STATUS", "status"), ("UPDATED", "updated"), ("INPUT", "input"))
SERVICE_COLUMNS = (
    ("SERVICE", "name"),
    ("LIVE", "live"),
    ("DESCRIPTION", "description"),
    ("ADDRESS", "address"),
)
EVENT_COLUMNS = (("#", "sequence"), ("EVENT", "type"), ("DATA", "data"))
REQUEST_COLUMNS = (("SERVICE", "service"), ("TASK", "task"), ("INPUT", "input"), ("AGE", "age"))

TASK_PLACEHOLDER = "New task: type its input and press Enter"
ANSWER_PLACEHOLDER = "Answer the selected request… (task {task}; Enter sends, esc: new task)"
GONE_PLACEHOLDER = "The selected request (task {task}) no longer waits (esc: new task)"
TASK_ANSWER_PLACEHOLDER = "Answer task {task}: {prompt} (Enter sends, esc: new task)"
TASK_GONE_PLACEHOLDER = "Task {task} no longer waits for input ({status}; esc: new task)"

#: Colours of task and step statuses (the two share their values).
STATUS_STYLES = {
    "pending": "yellow",
    "running": "cyan",
    "waiting_for_input": "bold black on yellow",
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
        live_cell(definition),
        Text(one_line(definition.description, 40)),
        Text(address),
    )


def live_cell(definition: ServiceDefinition) -> Text:
    """`yes` when something consumes the service's queue, `no` when nothing does."""
    state = live(definition)
    if state is None:
        return Text("?", style="dim")
    return Text("yes", style="green") if state else Text("no", style="bold red")


def tasks_heading(state: MonitorState) -> str:
    waiting = state.waiting_tasks
    if not waiting:
        return "Tasks"
    return f"Tasks · {waiting} waiting for input (a: answer)"


# -- a workflow run's prompt and events ------------------------------------------------------


def event_cells(event: TaskEvent) -> tuple[Text, ...]:
    data = json.dumps(event.data, ensure_ascii=False, default=str) if event.data else ""
    style = (
        "bold"
        if event.is_terminal
        else ("yellow" if event.type.startswith("InputRequired") else "")
    )
    return (
        Text(str(event.sequence), justify="right"),
        Text(event.type, style=style),
        Text(one_line(data, EVENT_DATA_WIDTH), style="dim"),
    )


def events_heading(state: MonitorState) -> Text:
    """Which task's events the panel shows, and whether more are coming."""
    task_id = state.events_task
    if task_id is None:
        return Text("Events (select a task)")
    text = Text(f"Events · task {short_id(task_id)}")
    if state.events_problem:
        text.append(f" · {state.events_problem}", style="red")
    elif state.events_done:
        text.append(" · finished", style="dim")
    else:
        text.append(" · live", style="green")
    return text


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
    if state.answering_task is not None:
        task_id = state.answering_task
        summary = state.tasks.get(task_id)
        if summary is not None and not is_waiting(summary):
            status = summary.status.value
            return TASK_GONE_PLACEHOLDER.format(task=short_id(task_id), status=status)
        prompt = one_line(prompt_text(summary.prompt if summary else None), INPUT_WIDTH)
        return TASK_ANSWER_PLACEHOLDER.format(task=short_id(task_id), prompt=prompt or "…")
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
    if state.dead_letters is not None:
        line.append("  │  ")
        style = "red" if state.dead_letters else ""
        line.append(f"dead letters: {state.dead_letters}", style=style)
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
    consumers = definition.consumers if isinstance(definition, ServiceInfo) else None
    state = {None: "not known", True: "yes", False: "no: nothing consumes its queue"}
    return fields(
        [
            ("Service", definition.service_name),
            ("Live", state[live(definition)]),
            ("Consumers", "" if consumers is None else str(consumers)),
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
            ("Service", summary.service or ""),
            ("Session", summary.session_id or ""),
            ("Input", summary.input),
        ]
    )
    if is_waiting(summary):
        text.append("\nWaiting for input\n", style="bold black on yellow")
        text.append(f"{prompt_text(summary.prompt) or '(no prompt given)'}\n")
        text.append("a or Enter: answer it\n", style="dim")
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
