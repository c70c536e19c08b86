"""The monitor's state without a screen: merging pushed events and loaded lists, ordering,
selection, the requests waiting at human services, and what it asks the view to do."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from llama_agents.console import monitor_render as render
from llama_agents.console.monitor_humans import WaitingRequest
from llama_agents.console.monitor_state import MAX_EVENTS, Connection, MonitorState
from llama_agents.control_plane.events import ControlPlaneEvent
from llama_agents.control_plane.models import TaskRecord, TaskStatus, TaskSummary
from llama_agents.messages import ServiceDefinition, TaskDefinition
from llama_agents.messages.records import ServiceInfo, TaskEvent

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def task(
    task_id: str,
    *,
    created: float = 0,
    updated: float = 0,
    status: TaskStatus = TaskStatus.RUNNING,
    text: str = "do it",
) -> TaskSummary:
    return TaskSummary(
        task_id=task_id,
        input=text,
        status=status,
        created_at=at(created),
        updated_at=at(max(created, updated)),
        steps=1,
    )


def service(name: str, *, human: bool = False, port: int = 8100) -> ServiceDefinition:
    return ServiceDefinition(
        service_name=name,
        description=f"{name} does things",
        kind="human" if human else "service",
        host="127.0.0.1",
        port=port,
    )


def waiting(service_name: str, id_: str, task_id: str, *, port: int = 8100) -> WaitingRequest:
    return WaitingRequest(
        service=service_name,
        url=f"http://127.0.0.1:{port}",
        id_=id_,
        task_id=task_id,
        input="approve?",
        prompt="Approve the refund?",
        created_at=T0,
    )


def task_event(summary: TaskSummary) -> ControlPlaneEvent:
    return ControlPlaneEvent(kind="task", action="updated", task=summary)


def registered(definition: ServiceDefinition) -> ControlPlaneEvent:
    return ControlPlaneEvent(kind="service", action="registered", service=definition)


def deregistered(name: str) -> ControlPlaneEvent:
    return ControlPlaneEvent(kind="service", action="deregistered", service_name=name)


def test_pushed_task_events_update_and_never_go_back() -> None:
    state = MonitorState()
    state.apply(task_event(task("t1", updated=1)))
    state.apply(task_event(task("t1", updated=3, status=TaskStatus.COMPLETED)))
    state.apply(task_event(task("t1", updated=2)))  # late and older: ignored
    assert state.tasks["t1"].status is TaskStatus.COMPLETED
    assert state.tasks["t1"].updated_at == at(3)
    changes = state.take_changes()
    assert list(changes.tasks) == ["t1"]
    assert not changes.fetch_humans  # no human service to ask
    assert state.take_changes().tasks == {}  # taken once


def test_a_load_keeps_what_events_changed_while_it_was_read() -> None:
    state = MonitorState()
    state.loaded([task("old", created=0), task("gone", created=1)], [service("a")])
    state.take_changes()

    state.begin_load()
    state.apply(task_event(task("old", created=0, updated=9, status=TaskStatus.COMPLETED)))
    state.apply(task_event(task("pushed", created=8)))  # created while the lists were read
    state.apply(registered(service("b")))
    state.apply(deregistered("a"))
    state.loaded(
        [task("new", created=5), task("old", created=0, updated=4)],  # read before the events
        [service("a"), service("c")],
    )

    assert state.tasks["old"].status is TaskStatus.COMPLETED  # the newer copy won
    # "gone" is no longer listed; rows stay in the order they were first seen.
    assert list(state.tasks) == ["old", "pushed", "new"]
    assert list(state.services) == ["b", "c"]  # "a" deregistered meanwhile, "b" registered
    changes = state.take_changes()
    assert {"gone", "new", "old", "pushed"} <= changes.tasks.keys()
    assert {"a", "b", "c"} <= changes.services.keys()
    assert changes.details


def test_ordering_first_seen_then_by_creation_and_name() -> None:
    state = MonitorState()
    state.loaded(
        [task("late", created=3), task("early", created=1), task("middle", created=2)],
        [service("zeta"), service("alpha")],
    )
    assert list(state.tasks) == ["early", "middle", "late"]
    assert list(state.services) == ["alpha", "zeta"]
    changes = state.take_changes()
    assert list(changes.tasks) == ["early", "middle", "late"]  # the order rows are added in

    state.apply(task_event(task("newest", created=4)))
    state.apply(registered(service("beta")))
    state.apply(task_event(task("early", created=1, updated=5)))  # an update keeps its place
    assert list(state.tasks) == ["early", "middle", "late", "newest"]
    assert list(state.services) == ["alpha", "zeta", "beta"]  # pushed: appended


def test_resync_asks_for_a_reload_and_changes_nothing() -> None:
    state = MonitorState()
    state.apply(task_event(task("t1")))
    state.take_changes()
    state.apply(ControlPlaneEvent(kind="resync", action="dropped"))
    changes = state.take_changes()
    assert changes.reload and not changes.tasks and "t1" in state.tasks


def test_deregistration_drops_the_service_and_what_waits_there() -> None:
    state = MonitorState()
    state.loaded([], [service("desk", human=True), service("worker")])
    assert state.take_changes().fetch_humans == {"desk"}
    state.listed_requests("desk", "http://127.0.0.1:8100", [waiting("desk", "r1", "t1")])
    state.select("service", "desk")
    state.take_changes()

    state.apply(deregistered("desk"))
    assert list(state.services) == ["worker"] and state.requests == {}
    assert not state.offers_answers  # no human service, nothing waits: no answer key
    changes = state.take_changes()
    assert "desk" in changes.services and "desk/r1" in changes.requests
    assert changes.waiting and changes.details
    assert state.selection == ("service", "desk")  # kept; the details say it is gone
    assert "no longer registered" in str(render.details(state))


def test_selection_stays_on_its_row_when_rows_change() -> None:
    state = MonitorState()
    state.loaded([task("a", created=1), task("b", created=2)], [])
    state.select("task", "b")
    changes = state.take_changes()
    assert changes.fetch_record == "b" and changes.details

    state.begin_load()
    state.loaded([task("b", created=2), task("c", created=3)], [])  # "a" went, "c" came
    state.apply(task_event(task("d", created=4)))
    assert state.selection == ("task", "b")
    assert state.take_changes().cursor is None  # the view's cursor is not moved for it

    state.select("task", "b")  # the same row again: nothing to fetch
    assert state.take_changes().fetch_record is None
    state.begin_load()
    state.loaded([task("c", created=3)], [])  # the selected task itself went away
    assert state.selection == ("task", "b")
    assert "not known to the control plane" in str(render.details(state))


def test_a_created_task_is_selected_once_listed_whatever_comes_first() -> None:
    state = MonitorState()
    state.created("t-answer-first")
    assert state.selection is None and "created task t-answer" in state.message
    state.apply(task_event(task("t-answer-first")))
    assert state.selection == ("task", "t-answer-first")
    assert state.take_changes().cursor == ("task", "t-answer-first")

    state.apply(task_event(task("t-event-first")))
    state.created("t-event-first")
    assert state.selection == ("task", "t-event-first")


def test_the_selected_task_fetches_its_record_and_keeps_the_newest() -> None:
    state = MonitorState()
    state.apply(task_event(task("t1", updated=1)))
    state.select("task", "t1")
    assert state.take_changes().fetch_record == "t1"
    definition = TaskDefinition(input="do it", task_id="t1")
    record = TaskRecord(
        task_id="t1", input="do it", definition=definition, created_at=T0, updated_at=at(1)
    )
    state.record_fetched(record)
    assert state.record is record and state.take_changes().details
    assert "(none yet)" in str(render.details(state))  # the record's steps are shown

    state.apply(task_event(task("t1", updated=2)))  # newer than the record: fetch again
    assert state.take_changes().fetch_record == "t1"
    assert "loading" in str(render.details(state))
    state.select("task", "other")
    state.record_fetched(record.model_copy(update={"updated_at": at(2)}))  # too late
    assert state.record is record


def test_human_services_are_asked_for_their_requests() -> None:
    state = MonitorState()
    state.apply(registered(service("desk", human=True)))
    assert state.take_changes().fetch_humans == {"desk"}
    state.apply(task_event(task("t1")))  # a step may have gone to a person
    changes = state.take_changes()
    assert changes.fetch_humans == changes.settle_humans == {"desk"}

    first, second = waiting("desk", "r1", "t1"), waiting("desk", "r2", "t2")
    state.listed_requests("desk", "http://127.0.0.1:8100", [first, second])
    assert list(state.requests) == ["desk/r1", "desk/r2"]
    changes = state.take_changes()
    assert list(changes.requests) == ["desk/r1", "desk/r2"] and changes.waiting
    state.listed_requests("desk", "http://127.0.0.1:8100", [first, second])  # same again
    assert state.take_changes().requests == {}

    # An answer from a service that moved since it was asked is not trusted.
    state.apply(registered(service("desk", human=True, port=8200)))
    state.listed_requests("desk", "http://127.0.0.1:8100", [])
    assert list(state.requests) == ["desk/r1", "desk/r2"]
    state.listed_requests("desk", "http://127.0.0.1:8200", [second])
    assert list(state.requests) == ["desk/r2"]


def test_answering_a_request() -> None:
    state = MonitorState()
    state.apply(registered(service("desk", human=True)))
    request = waiting("desk", "r1", "t1")
    state.listed_requests("desk", "http://127.0.0.1:8100", [request])
    assert state.request_to_answer(under_cursor="desk/r1") == request
    state.select_request(request)
    assert state.selection == ("request", "desk/r1") and state.answering == request
    assert render.input_placeholder(state).startswith("Answer the selected request")
    state.take_changes()

    state.answered(request, accepted=True)
    assert state.answering is None and state.requests == {}
    assert state.selection == ("task", "t1") and "answered the request" in state.message
    changes = state.take_changes()
    assert changes.fetch_humans == {"desk"} and changes.cursor == ("task", "t1")
    assert render.input_placeholder(state).startswith("New task")

    assert state.request_to_answer(under_cursor=None) is None
    assert state.message == "nothing is waiting for you" and state.message_is_error


def test_a_request_answered_elsewhere() -> None:
    state = MonitorState()
    state.apply(registered(service("desk", human=True)))
    request = waiting("desk", "r1", "t1")
    state.listed_requests("desk", "http://127.0.0.1:8100", [request])
    state.select("request", "desk/r1")  # moving onto it makes the box its answer box
    assert state.answering == request
    state.listed_requests("desk", "http://127.0.0.1:8100", [])  # answered by someone else
    assert state.answering == request and "no longer waits" in render.input_placeholder(state)
    assert "no longer waits" in str(render.details(state))
    state.answered(request, accepted=False)
    assert state.answering is None and "already answered" in state.message
    assert not state.message_is_error and state.selection == ("request", "desk/r1")


def test_cancelling_needs_a_running_task() -> None:
    state = MonitorState()
    assert state.task_to_cancel() is None and state.message == "select a task to cancel"
    state.apply(task_event(task("done", status=TaskStatus.COMPLETED)))
    state.select("task", "done")
    assert state.task_to_cancel() is None and "already finished (completed)" in state.message
    state.apply(task_event(task("live")))
    state.select("task", "live")
    assert state.task_to_cancel() == "live"
    state.cancelled(task("live", updated=1, status=TaskStatus.CANCELLED))
    assert state.tasks["live"].status is TaskStatus.CANCELLED
    assert state.message == "cancelled task live"


def test_the_status_line() -> None:
    state = MonitorState()
    assert state.connection is Connection.CONNECTING
    state.set_connection(Connection.RECONNECTING, "cannot reach it (retrying in 1s)")
    state.say("cannot reload: nope", error=True)
    line = str(render.status_line(state, "http://cp:8000"))
    assert "reconnecting" in line and "http://cp:8000" in line
    assert "retrying in 1s" in line and "cannot reload: nope" in line
    assert state.take_changes().status


PROMPT = {"type": "InputRequiredEvent", "data": {"prefix": "Approve the draft?"}}


def waiting_task(task_id: str, *, updated: float = 0) -> TaskSummary:
    summary = task(task_id, updated=updated, status=TaskStatus.WAITING_FOR_INPUT)
    return summary.model_copy(update={"prompt": PROMPT, "service": "review"})


def run_event(sequence: int, type: str = "Progress", **data: object) -> TaskEvent:
    return TaskEvent(sequence=sequence, type=type, data=data, created_at=T0)


def test_the_selected_tasks_events_are_followed_in_order_once() -> None:
    state = MonitorState()
    state.loaded([task("t1", created=1), task("t2", created=2)], [service("a")])
    state.take_changes()
    state.select("task", "t1")
    changes = state.take_changes()
    assert changes.follow == "t1" and changes.events_reset and not changes.unfollow

    state.event_received("t1", run_event(1, message="drafting"))
    state.event_received("t1", run_event(2))
    state.event_received("t1", run_event(1))  # a resumed stream's repeat: ignored
    state.event_received("t2", run_event(3))  # a follower of another task: ignored
    assert [e.sequence for e in state.events] == [1, 2] and state.events_seen == 2
    assert [e.sequence for e in state.take_changes().events_added] == [1, 2]
    assert '"message": "drafting"' in str(render.event_cells(state.events[0])[2])
    assert "task t1 · live" in str(render.events_heading(state))

    state.events_trouble("t1", "connection reset (resuming after #2 in 0.5s)")
    assert "resuming after #2" in str(render.events_heading(state))
    state.event_received("t1", run_event(3, "TaskFinished", status="completed"))
    assert state.events_done and not state.events_problem
    assert "finished" in str(render.events_heading(state))

    state.select("task", "t1")  # the same task again: not followed twice
    assert state.take_changes().follow is None
    state.select("task", "t2")  # another task: the panel starts over with it
    changes = state.take_changes()
    assert changes.follow == "t2" and changes.events_reset and state.events == []
    state.select("service", "a")  # no task: nothing followed
    changes = state.take_changes()
    assert changes.unfollow and changes.follow is None and state.events_task is None
    assert "select a task" in str(render.events_heading(state))


def test_the_events_panel_keeps_the_latest_events() -> None:
    state = MonitorState()
    state.select("task", "t1")
    for sequence in range(1, MAX_EVENTS + 11):
        state.event_received("t1", run_event(sequence))
    assert len(state.events) == MAX_EVENTS and state.events[0].sequence == 11
    state.events_ended("t1")  # a log without TaskFinished, read to its end
    assert state.events_done and "finished" in str(render.events_heading(state))


def test_a_waiting_task_is_marked_shows_its_prompt_and_is_answered() -> None:
    state = MonitorState()
    state.loaded([task("busy", created=1), waiting_task("w")], [])
    assert state.waiting_tasks == 1 and state.can_answer and not state.offers_answers
    assert render.tasks_heading(state) == "Tasks · 1 waiting for input (a: answer)"
    assert str(render.task_cells(state.tasks["w"])[1]) == "waiting_for_input"
    state.select("task", "w")
    details = str(render.details(state))
    assert "Waiting for input" in details and "Approve the draft?" in details
    state.take_changes()

    assert state.choose_answer(under_cursor=None) == "task"
    assert state.answering_task == "w" and state.answering is None
    assert state.take_changes().input_mode
    assert render.input_placeholder(state) == (
        "Answer task w: Approve the draft? (Enter sends, esc: new task)"
    )
    state.select("task", "w")  # the answer box stays while its task is selected
    assert state.answering_task == "w"

    # A refusal that may pass (unreachable): still answering; a final one: back to new tasks.
    state.task_answered("w", sent=False, problem="cannot reach the control plane")
    assert state.answering_task == "w" and state.message_is_error
    state.apply(task_event(task("w", updated=5, status=TaskStatus.COMPLETED)))
    changes = state.take_changes()
    assert changes.input_mode and changes.waiting  # the box and the heading say so
    assert "no longer waits for input (completed" in render.input_placeholder(state)
    assert state.waiting_tasks == 0 and render.tasks_heading(state) == "Tasks"
    state.task_answered("w", sent=False, problem="it has already finished", final=True)
    assert state.answering_task is None and "cannot answer task w" in state.message
    assert render.input_placeholder(state).startswith("New task")

    assert state.choose_answer(under_cursor=None) is None
    assert "task w is not waiting for input (completed)" in state.message


def test_answering_moves_off_the_task_with_the_selection() -> None:
    state = MonitorState()
    state.loaded([waiting_task("w"), task("other", created=1)], [])
    state.select("task", "w")
    state.choose_answer(None)
    state.select("task", "other")
    assert state.answering_task is None
    state.answer_task("w")
    state.task_answered("w", sent=True)
    assert state.answering_task is None and state.message == "answered task w"
    state.select("service", "nothing")
    assert state.choose_answer(None) is None
    assert state.message == "select a task that is waiting for input"


def test_a_waiting_task_at_a_human_service_is_answered_there() -> None:
    state = MonitorState()
    state.loaded([waiting_task("t1")], [service("desk", human=True)])
    request = waiting("desk", "r1", "t1")
    state.listed_requests("desk", "http://127.0.0.1:8100", [request])
    state.select("task", "t1")
    assert state.choose_answer(under_cursor=None) == "request"
    assert state.answering == request and state.answering_task is None


def test_liveness_from_the_listing_and_after_a_pushed_registration() -> None:
    state = MonitorState()
    listed = ServiceInfo(**service("a").model_dump(), consumers=2, live=True)
    state.loaded([], [listed])
    assert str(render.service_cells(state.services["a"])[1]) == "yes"
    assert not state.take_changes().fetch_services  # the listing said it

    state.apply(registered(service("b")))  # a registration says nothing of consumers
    assert state.take_changes().fetch_services == {"b"}
    assert str(render.service_cells(state.services["b"])[1]) == "?"
    state.service_fetched(ServiceInfo(**service("b").model_dump(), consumers=0, live=False))
    assert str(render.service_cells(state.services["b"])[1]) == "no"
    state.select("service", "b")
    details = str(render.details(state))
    assert "no: nothing consumes its queue" in details and "Consumers" in details
    state.service_fetched(ServiceInfo(**service("gone").model_dump(), live=True))
    assert "gone" not in state.services  # deregistered meanwhile: not brought back


def test_what_a_prompt_shows() -> None:
    assert render.prompt_text(PROMPT) == "Approve the draft?"
    assert render.prompt_text({"type": "Ask", "data": {"question": "Why?"}}) == "Why?"
    assert render.prompt_text({"type": "Ask", "data": {"n": 1}}) == '{"n": 1}'
    assert render.prompt_text({"type": "Ask", "data": {}}) == "Ask"
    assert render.prompt_text(None) == ""


def test_state_and_rendering_load_without_textual() -> None:
    code = (
        "import sys\n"
        "import llama_agents.console.monitor_state, llama_agents.console.monitor_render\n"
        "import llama_agents.console.monitor_events, llama_agents.console.monitor_actions\n"
        "assert 'textual' not in sys.modules, 'textual was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
