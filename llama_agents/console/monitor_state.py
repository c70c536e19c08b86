"""What the monitor knows, apart from how it is drawn: a plain object, testable without textual.

`MonitorState` holds the task list, the services (with whether anything consumes them), the
requests waiting at human services, the selected task's event log, the selection, what the
input box answers, the connection and the last message. The control plane's pushed events and
the lists it loads are merged into it (a newer copy of a task always wins, whatever arrives
first). Each change is noted in a `Changes`, which the app takes after every step to redraw
only what changed and to start the fetches the state asks for: the state does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from llama_agents.console.monitor_humans import WaitingRequest, human_url
from llama_agents.control_plane.events import ControlPlaneEvent
from llama_agents.control_plane.models import TaskRecord, TaskStatus, TaskSummary
from llama_agents.messages import ServiceDefinition
from llama_agents.messages.records import ServiceInfo, TaskEvent

#: How many characters of a task id the monitor shows (a UUID's first group).
SHORT_ID = 8

#: The most events of the selected task the events panel keeps (the latest ones).
MAX_EVENTS = 500

Kind = Literal["task", "service", "request"]
Selection = tuple[Kind, str]


def short_id(task_id: str) -> str:
    return task_id[:SHORT_ID]


def is_waiting(summary: TaskSummary | None) -> bool:
    return summary is not None and summary.status is TaskStatus.WAITING_FOR_INPUT


def live(definition: ServiceDefinition | None) -> bool | None:
    """Whether anything consumes the service's queue; None when not known (yet)."""
    return definition.live if isinstance(definition, ServiceInfo) else None


class Connection(StrEnum):
    """Where the app's event stream is: the status bar shows it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


def _keys() -> dict[str, None]:
    return {}


@dataclass
class Changes:
    """What changed since the view last drew, and what the state asks the app to fetch.

    Row keys are kept in the order they changed (an ordered set): new rows are added in it.
    """

    tasks: dict[str, None] = field(default_factory=_keys)
    services: dict[str, None] = field(default_factory=_keys)
    requests: dict[str, None] = field(default_factory=_keys)
    details: bool = False  # the details pane
    status: bool = False  # the status bar
    waiting: bool = False  # the "Waiting for you" section (and which keys are offered)
    input_mode: bool = False  # whether the input box creates tasks or answers something
    cursor: Selection | None = None  # put the cursor of that list on that row
    fetch_record: str | None = None  # fetch this task's full record (the selected task)
    fetch_humans: set[str] = field(default_factory=set)  # list these human services' requests
    settle_humans: set[str] = field(default_factory=set)  # and look at these once more, later
    reload: bool = False  # load both lists again (the control plane dropped events for us)
    events_reset: bool = False  # the events panel starts over (another task, or none)
    events_added: list[TaskEvent] = field(default_factory=list)  # rows to append to it
    events_heading: bool = False  # what the panel says above its rows
    follow: str | None = None  # follow this task's events (replacing any other follower)
    unfollow: bool = False  # stop following (no task is selected any more)
    fetch_services: set[str] = field(default_factory=set)  # read these services' liveness
    count_dead_letters: bool = False  # ask the control plane how many dead letters wait


class MonitorState:
    """The monitor's model. Every method changes it and notes what changed; no I/O."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskSummary] = {}  # in the order they were first listed
        self.services: dict[str, ServiceDefinition] = {}
        self.requests: dict[str, WaitingRequest] = {}  # by `WaitingRequest.key`, oldest first
        self.selection: Selection | None = None
        self.answering: WaitingRequest | None = None  # set: the input box answers it
        self.answering_task: str | None = None  # set: the input box answers this task's run
        self.record: TaskRecord | None = None  # the selected task's full record, once fetched
        self.connection = Connection.CONNECTING
        self.problem = ""  # why the event stream is down; shown until it is back
        self.message = ""  # the last action's outcome; shown until the next action
        self.message_is_error = False
        self.dead_letters: int | None = None  # how many wait (None: not known)
        self._changes = Changes()
        self._touched_tasks: set[str] = set()  # changed by events while the lists load
        self._touched_services: set[str] = set()
        self._select_when_seen: str | None = None  # a task created here, not listed yet
        # The selected task's event log, as far as it was read (its latest MAX_EVENTS).
        self.events_task: str | None = None
        self.events: list[TaskEvent] = []
        self.events_seen = 0  # the last sequence read: a resumed stream starts after it
        self.events_done = False  # its TaskFinished event was read: nothing more comes
        self.events_problem = ""  # why the stream is down, until events come again

    def take_changes(self) -> Changes:
        """What changed since the last call (the view draws it)."""
        changes, self._changes = self._changes, Changes()
        return changes

    # -- loading and events ---------------------------------------------------------------

    def begin_load(self) -> None:
        """The lists are about to be read: from now on, pushed changes win over them."""
        self._touched_tasks.clear()
        self._touched_services.clear()

    def loaded(self, tasks: Iterable[TaskSummary], services: Iterable[ServiceDefinition]) -> None:
        """Replace both lists by what was read, keeping what events changed meanwhile."""
        merged: dict[str, TaskSummary] = {}
        for summary in sorted(tasks, key=lambda t: t.created_at):
            current = self.tasks.get(summary.task_id)
            newer = current is not None and current.updated_at > summary.updated_at
            merged[summary.task_id] = current if newer and current is not None else summary
        pushed = [self.tasks[t] for t in self._touched_tasks - merged.keys() if t in self.tasks]
        for summary in sorted(pushed, key=lambda t: t.created_at):
            merged[summary.task_id] = summary

        listed = {s.service_name: s for s in services}
        for name in self._touched_services:
            if name in self.services:
                listed[name] = self.services[name]
            else:
                listed.pop(name, None)

        for task_id in [t for t in self.tasks if t not in merged]:
            del self.tasks[task_id]
            self._changes.tasks[task_id] = None
        for summary in merged.values():
            self.put_task(summary)
        for name in [s for s in self.services if s not in listed]:
            self.drop_service(name)
        for definition in sorted(listed.values(), key=lambda d: d.service_name):
            self.put_service(definition)
        self.want_humans()
        self._refresh_details()
        self._changes.count_dead_letters = True

    def apply(self, event: ControlPlaneEvent) -> None:
        """Merge one pushed change."""
        if event.kind == "resync":
            self._changes.reload = True  # the control plane dropped events for us
        elif event.kind == "task" and event.task is not None:
            self._touched_tasks.add(event.task.task_id)
            if event.task.status is TaskStatus.FAILED or self.dead_letters:
                # A dead-lettered step fails its task; a replayed one resumes it.
                self._changes.count_dead_letters = True
            self.put_task(event.task)
            # A step may have been sent to a human service, or answered.
            self.want_humans(settle=True)
        elif event.kind == "service" and event.action == "registered" and event.service:
            self._touched_services.add(event.service.service_name)
            self.put_service(event.service)
            # A registration says nothing of consumers: ask the control plane.
            self._changes.fetch_services.add(event.service.service_name)
        elif event.kind == "service" and event.action == "deregistered":
            name = event.service_name or (event.service.service_name if event.service else None)
            if name is not None:
                self._touched_services.add(name)
                self.drop_service(name)

    # -- the lists --------------------------------------------------------------------------

    def put_task(self, summary: TaskSummary) -> None:
        """Add or update a task; an older copy of a task never replaces a newer one."""
        task_id = summary.task_id
        current = self.tasks.get(task_id)
        if current is not None and summary.updated_at < current.updated_at:
            return
        self.tasks[task_id] = summary
        self._changes.tasks[task_id] = None
        if is_waiting(summary) != is_waiting(current):
            self._changes.waiting = True  # the tasks heading counts them; `a` is offered
        if task_id == self.answering_task:
            self._changes.input_mode = True  # the answer box says whether it still waits
        if task_id == self._select_when_seen:
            self._select_when_seen = None
            self.select_task(task_id)
        elif self.selection == ("task", task_id):
            self._refresh_details()

    def put_service(self, definition: ServiceDefinition) -> None:
        name = definition.service_name
        self.services[name] = definition
        self._changes.services[name] = None
        if human_url(definition) is None:
            self.set_requests(name, [])
        else:
            self.want_humans([name])
        self._changes.waiting = True
        if self.selection == ("service", name):
            self._changes.details = True

    def service_fetched(self, info: ServiceInfo) -> None:
        """A service's definition with its liveness, read after it registered."""
        if info.service_name in self.services:
            self.put_service(info)

    def drop_service(self, name: str) -> None:
        self.services.pop(name, None)
        self._changes.services[name] = None
        self.set_requests(name, [])
        self._changes.waiting = True
        if self.selection == ("service", name):
            self._changes.details = True

    # -- the requests waiting at human services ----------------------------------------------

    def human_services(self) -> list[str]:
        return [name for name, d in self.services.items() if human_url(d) is not None]

    @property
    def offers_answers(self) -> bool:
        """Whether the "Waiting for you" list is shown: a human service is registered, or a
        request is still listed."""
        return bool(self.human_services() or self.requests)

    @property
    def waiting_tasks(self) -> int:
        """How many listed tasks wait for input."""
        return sum(1 for summary in self.tasks.values() if is_waiting(summary))

    @property
    def can_answer(self) -> bool:
        """Whether the answer key is offered: something is waiting somewhere."""
        return self.offers_answers or self.waiting_tasks > 0

    def want_humans(self, names: Iterable[str] | None = None, *, settle: bool = False) -> None:
        """Ask for the requests of these human services (default: all) to be listed again.

        `settle`: and once more a moment later (a service takes its step from the queue a
        moment after the control plane says it was sent).
        """
        humans = set(self.human_services())
        wanted = humans if names is None else humans & set(names)
        self._changes.fetch_humans |= wanted
        if settle:
            self._changes.settle_humans |= wanted

    def listed_requests(self, service: str, url: str, listed: list[WaitingRequest]) -> None:
        """What `service`, asked at `url`, lists as waiting (ignored if it changed since)."""
        if human_url(self.services.get(service)) == url:
            self.set_requests(service, listed)

    def set_requests(self, service: str, listed: list[WaitingRequest]) -> None:
        """Make the list hold exactly `listed` for `service` (kept in order, oldest first)."""
        keep = {request.key: request for request in listed}
        gone = [k for k, r in self.requests.items() if r.service == service and k not in keep]
        if not gone and keep.keys() <= self.requests.keys():
            return
        for key in gone:
            del self.requests[key]
            self._changes.requests[key] = None
        for key, request in keep.items():
            if key not in self.requests:
                self.requests[key] = request
                self._changes.requests[key] = None
        self._changes.waiting = self._changes.input_mode = True
        if self.selection is not None and self.selection[0] == "request":
            self._changes.details = True

    # -- selection ------------------------------------------------------------------------

    def select(self, kind: Kind, key: str) -> None:
        """The person moved to a row: selecting a request makes the input box its answer box;
        anything else, a task's (unless it is the task being answered)."""
        if kind == "request":
            self.set_answering(self.requests.get(key))
        elif (kind, key) != ("task", self.answering_task):
            self.set_answering(None)
        if self.selection != (kind, key):
            self.selection = (kind, key)
            self._refresh_details()
        self._follow_selection()

    def select_task(self, task_id: str) -> None:
        """Show the task's details and put the task list's cursor on it."""
        self.selection = ("task", task_id)
        self._changes.cursor = ("task", task_id)
        self._refresh_details()
        self._follow_selection()

    def select_request(self, request: WaitingRequest) -> None:
        """Answer `request` in the input box (and put the request list's cursor on it)."""
        self._changes.cursor = ("request", request.key)
        self.set_answering(request)
        if self.selection != ("request", request.key):
            self.selection = ("request", request.key)
            self._changes.details = True
        self._follow_selection()

    def set_answering(self, request: WaitingRequest | None) -> None:
        """Switch the input box between answering `request` and creating tasks (None)."""
        before = self.answering.key if self.answering is not None else None
        self.answering = request
        if before != (request.key if request is not None else None):
            self._changes.input_mode = True
        if self.answering_task is not None:
            self.answering_task = None
            self._changes.input_mode = True

    def answer_task(self, task_id: str) -> None:
        """Make the input box the answer box of the task's waiting run."""
        self.set_answering(None)
        self.answering_task = task_id
        self._changes.input_mode = True
        if self.selection != ("task", task_id):
            self.select_task(task_id)

    # -- the selected task's event log ------------------------------------------------------

    def _follow_selection(self) -> None:
        """Have the selected task's events followed; nothing followed when no task is."""
        task_id = self.selection[1] if self.selection and self.selection[0] == "task" else None
        if task_id == self.events_task:
            return
        self.events_task = task_id
        self.events = []
        self.events_seen = 0
        self.events_done = False
        self.events_problem = ""
        self._changes.events_reset = self._changes.events_heading = True
        self._changes.events_added = []
        self._changes.follow = task_id
        self._changes.unfollow = task_id is None

    def event_received(self, task_id: str, event: TaskEvent) -> None:
        """One event of a followed task, in order; a repeat or another task's is ignored."""
        if task_id != self.events_task or event.sequence <= self.events_seen:
            return
        self.events_seen = event.sequence
        self.events.append(event)
        self._changes.events_added.append(event)
        if len(self.events) > MAX_EVENTS:
            del self.events[: len(self.events) - MAX_EVENTS]
        if self.events_problem or event.is_terminal:
            self.events_problem = ""
            self._changes.events_heading = True
        if event.is_terminal:
            self.events_done = True

    def events_trouble(self, task_id: str, problem: str) -> None:
        """Why the followed task's event stream is down (it is resumed by the follower)."""
        if task_id == self.events_task:
            self.events_problem = problem
            self._changes.events_heading = True

    def events_ended(self, task_id: str) -> None:
        """The followed task's log is read to its end: nothing more will come."""
        if task_id == self.events_task and not self.events_done:
            self.events_done = True
            self.events_problem = ""
            self._changes.events_heading = True

    def task_finished(self, task_id: str) -> bool:
        """Whether the task is known to have finished (its log has no more to come)."""
        summary = self.tasks.get(task_id)
        return summary is not None and summary.status.finished

    def record_fetched(self, record: TaskRecord) -> None:
        """A task's full record arrived: shown if that task is still the one selected."""
        if self.selection == ("task", record.task_id):
            self.record = record
            self._changes.details = True

    def _refresh_details(self) -> None:
        """Show what is known now; for a task, have its full record (steps, result) fetched."""
        self._changes.details = True
        if self.selection is not None and self.selection[0] == "task":
            self._changes.fetch_record = self.selection[1]

    # -- the status bar and the outcome of actions ------------------------------------------

    def set_connection(self, connection: Connection, problem: str = "") -> None:
        self.connection = connection
        self.problem = problem
        self._changes.status = True

    def dead_letters_counted(self, count: int | None) -> None:
        if count != self.dead_letters:
            self.dead_letters = count
            self._changes.status = True

    def say(self, message: str, *, error: bool = False) -> None:
        self.message = message
        self.message_is_error = error
        self._changes.status = True

    def created(self, task_id: str) -> None:
        """A task this monitor created: selected as soon as it is listed."""
        self.say(f"created task {short_id(task_id)}")
        # The pushed event may come before or after the answer to the creation.
        if task_id in self.tasks:
            self.select_task(task_id)
        else:
            self._select_when_seen = task_id

    def task_to_cancel(self) -> str | None:
        """The selected task, if it can still be cancelled; else None, and why is said."""
        if self.selection is None or self.selection[0] != "task":
            self.say("select a task to cancel", error=True)
            return None
        task_id = self.selection[1]
        known = self.tasks.get(task_id)
        if known is not None and known.status.finished:
            self.say(f"task {short_id(task_id)} has already finished ({known.status.value})")
            return None
        return task_id

    def cancelled(self, summary: TaskSummary) -> None:
        """The control plane's answer to a cancellation: the task as it is now."""
        self.put_task(summary)
        task = short_id(summary.task_id)
        if summary.status is TaskStatus.CANCELLED:
            self.say(f"cancelled task {task}")
        else:
            self.say(f"task {task} has already finished ({summary.status.value})")

    def request_to_answer(self, under_cursor: str | None) -> WaitingRequest | None:
        """The selected request, else the one under the request list's cursor; None (said)
        when nothing waits."""
        key = self.selection[1] if self.selection and self.selection[0] == "request" else None
        if key not in self.requests:
            key = under_cursor
        request = self.requests.get(key) if key is not None else None
        if request is None:
            self.say("nothing is waiting for you", error=True)
        return request

    def choose_answer(self, under_cursor: str | None) -> Literal["task", "request"] | None:
        """What the answer key answers: the selected task's waiting run (through the control
        plane), else a request waiting at a human service (the selected one, else the one
        under the request list's cursor). None when nothing is; the status line says why."""
        task_id = self.selection[1] if self.selection and self.selection[0] == "task" else None
        summary = self.tasks.get(task_id) if task_id is not None else None
        if task_id is not None and is_waiting(summary):
            # A human service's request for it is answered there, as before.
            at_human = [r for r in self.requests.values() if r.task_id == task_id]
            if at_human:
                self.select_request(at_human[0])
                return "request"
            self.answer_task(task_id)
            return "task"
        if self.offers_answers:
            request = self.request_to_answer(under_cursor)
            if request is None:
                return None
            self.select_request(request)
            return "request"
        if summary is not None:
            status = summary.status.value
            self.say(
                f"task {short_id(summary.task_id)} is not waiting for input ({status})", error=True
            )
        else:
            self.say("select a task that is waiting for input", error=True)
        return None

    def task_answered(
        self, task_id: str, sent: bool, problem: str = "", final: bool = False
    ) -> None:
        """What came of an answer sent through the control plane to the task's run.

        Sent, or refused for good (finished, unknown): the input box creates tasks again.
        """
        task = short_id(task_id)
        if (sent or final) and self.answering_task == task_id:
            self.answering_task = None
            self._changes.input_mode = True
        if sent:
            self.say(f"answered task {task}")
        else:
            self.say(f"cannot answer task {task}: {problem}", error=True)

    def answered(self, request: WaitingRequest, accepted: bool) -> None:
        """An answer was sent; `accepted` False: the request no longer waited."""
        if self.answering is not None and self.answering.key == request.key:
            self.set_answering(None)
        others = [r for r in self.requests.values() if r.service == request.service]
        self.set_requests(request.service, [r for r in others if r.key != request.key])
        self.want_humans([request.service])  # the service's word on what still waits
        task = short_id(request.task_id)
        if not accepted:
            self.say(
                f"the request of task {task} was already answered (by someone else?); "
                "yours was not needed"
            )
            return
        self.say(f"answered the request of task {task} at {request.service}")
        self.select_task(request.task_id)  # to watch the task go on with the answer
