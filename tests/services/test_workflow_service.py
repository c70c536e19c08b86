"""Any llama-index Workflow as a mesh service, in one process, on both queues: events streamed
in order and resumable, human input, release from memory and resume from a checkpoint,
start events, results, cancel, and what may be sent into a run."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from workflows import Context, Workflow, step
from workflows.events import HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent

from llama_agents import TaskStatus, WorkflowService
from llama_agents.messages.records import TaskRecord
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE, StepsObserved
from tests.support.streams import of_type, read_ndjson, read_sse
from tests.support.workflows import Mesh, Review, Slow, mesh


async def wait_status(m: Mesh, task_id: str, *statuses: TaskStatus) -> TaskRecord:
    return await m.control_plane.wait_for_status(task_id, set(statuses), timeout=DEADLINE)


async def test_a_run_streams_its_events_in_order_and_a_reconnect_gets_exactly_the_rest(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        review = Review()
        await m.add(WorkflowService(review, queue, service_name="review", event_coalesce_s=0))
        task_id = await m.create("release notes", service="review")

        waiting = await wait_status(m, task_id, TaskStatus.WAITING_FOR_INPUT)
        summary = waiting.summary()
        assert summary.prompt is not None
        assert summary.prompt["type"] == "InputRequiredEvent"
        assert "a note about release notes" in summary.prompt["data"]["prefix"]

        first = await read_sse(m.http, task_id, until=of_type("InputRequiredEvent"))
        assert [(e["sequence"], e["type"]) for e in first] == [
            (1, "Progress"),
            (2, "InputRequiredEvent"),
        ]
        assert first[0]["data"] == {"message": "drafting release notes"}
        assert first[0]["types"] == ["Progress"]

        # A client that saw event 1 and dropped reconnects: it gets 2, then what follows.
        rest = asyncio.create_task(read_sse(m.http, task_id, last_event_id=1))
        answered = await m.http.post(
            f"/tasks/{task_id}/events",
            json={"type": "HumanResponseEvent", "data": {"response": "yes"}},
        )
        assert answered.status_code == 202, answered.text
        events = await asyncio.wait_for(rest, DEADLINE)
        assert [e["sequence"] for e in events] == list(range(2, len(events) + 2))
        assert events[0]["type"] == "InputRequiredEvent"
        finished = events[-1]
        assert finished["type"] == "TaskFinished"
        assert finished["data"]["status"] == "completed"
        assert finished["data"]["result"] == {
            "draft": "a note about release notes",
            "approved": True,
        }

        result = (await m.http.get(f"/tasks/{task_id}/result")).json()
        assert result["data"]["result"]["approved"] is True
        assert review.calls == {"draft": 1, "ask": 1, "decide": 1}
        # The same log, read again from the start as JSON lines, ends with the same event.
        again = await read_ndjson(m.http, task_id)
        assert [e["sequence"] for e in again] == list(range(1, len(again) + 1))
        assert again[-1] == finished


async def test_what_may_be_sent_into_a_run_is_checked_and_nothing_is_imported(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Review(), queue, service_name="review"))
        task_id = await m.create("x", service="review")
        await wait_status(m, task_id, TaskStatus.WAITING_FOR_INPUT)

        events = f"/tasks/{task_id}/events"
        unknown = await m.http.post(events, json={"type": "Decision", "data": {}})
        assert unknown.status_code == 400
        assert "not an event of 'review'" in unknown.json()["detail"]
        # A class named by its import path is never imported: only declared types resolve.
        assert "email.mime.audio" not in sys.modules
        smuggled = await m.http.post(
            events,
            json={
                "type": "MIMEAudio",
                "qualified_name": "email.mime.audio.MIMEAudio",
                "data": {},
            },
        )
        assert smuggled.status_code == 400
        assert "email.mime.audio" not in sys.modules
        missing = await m.http.post(
            "/tasks/nope/events", json={"type": "HumanResponseEvent", "data": {}}
        )
        assert missing.status_code == 404

        sent = await m.http.post(
            events, json={"type": "HumanResponseEvent", "data": {"response": "no"}}
        )
        assert sent.status_code == 202
        await wait_status(m, task_id, TaskStatus.COMPLETED)
        late = await m.http.post(
            events, json={"type": "HumanResponseEvent", "data": {"response": "yes"}}
        )
        assert late.status_code == 409


class ObservedWorkflowService(StepsObserved, WorkflowService):
    """A workflow service that says when it has handled a step (the run ended or let go)."""


async def test_a_waiting_run_is_released_then_resumed_from_its_checkpoint(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        review = Review()
        service = await m.add(
            ObservedWorkflowService(review, queue, service_name="review", idle_release_s=0.05)
        )
        task_id = await m.create("budget", service="review")
        released = await m.control_plane.wait_for_status(
            task_id, {TaskStatus.WAITING_FOR_INPUT}, timeout=DEADLINE
        )
        released = await m.control_plane.manager.wait_until(
            task_id, lambda r: r.run is not None and r.run.released, DEADLINE
        )
        assert released.run is not None and released.run.holder is None
        # The control plane may apply the release before the replica has let the run go.
        await asyncio.wait_for(service.step_handled.wait(), DEADLINE)
        assert service.status()["runs"] == {"held": 0, "waiting": 0}, "no process holds it"
        assert service.counters["in_flight"] == 0, "its step was acknowledged"

        sent = await m.http.post(
            f"/tasks/{task_id}/events",
            json={"type": "HumanResponseEvent", "data": {"response": "yes"}},
        )
        assert sent.json()["status"] == "sent"
        done = await wait_status(m, task_id, TaskStatus.COMPLETED)
        assert done.result is not None and done.result.data["result"]["approved"] is True
        assert review.calls == {"draft": 1, "ask": 1, "decide": 1}, "completed steps ran once"
        [step] = done.steps
        assert step.attempt == 2, "the resume was a second attempt of the same step"


async def test_cancel_stops_the_run_where_it_runs(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        slow = Slow()
        await m.add(WorkflowService(slow, queue, service_name="slow"))
        task_id = await m.create("forever", service="slow")
        async with asyncio.timeout(DEADLINE):
            await slow.started.wait()
        cancelled = await m.http.post(f"/tasks/{task_id}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        async with asyncio.timeout(DEADLINE):
            await slow.cancelled.wait()  # the handler was cancelled in the replica
        events = await read_ndjson(m.http, task_id)
        assert events[-1]["type"] == "TaskFinished"
        assert events[-1]["data"]["status"] == "cancelled"
        record = await m.control_plane.get_task(task_id)
        assert record.status is TaskStatus.CANCELLED and record.result is not None
        assert record.result.error == "cancelled"


class Topic(StartEvent):
    topic: str
    depth: int = 1


class Report(BaseModel):
    topic: str
    depth: int


class Research(Workflow):
    @step
    async def research(self, ev: Topic) -> StopEvent:
        return StopEvent(result=Report(topic=ev.topic, depth=ev.depth))


async def test_a_start_event_is_checked_and_a_pydantic_result_keeps_its_fields(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Research(), queue, service_name="research"))
        bad = await m.http.post(
            "/tasks", json={"input": "x", "service": "research", "start_event": {"depth": 2}}
        )
        assert bad.status_code == 422
        assert "topic" in bad.json()["detail"]
        task_id = await m.create(
            "x", service="research", start_event={"topic": "llamas", "depth": 3}
        )
        done = await wait_status(m, task_id, TaskStatus.COMPLETED)
        assert done.result is not None
        assert done.result.data["result"] == {"topic": "llamas", "depth": 3}

        # Text alone cannot start it: the run fails saying which fields are needed.
        text_only = await m.create("llamas", service="research")
        failed = await wait_status(m, text_only, TaskStatus.FAILED)
        assert failed.error is not None and "topic" in failed.error
        unknown = await m.http.post("/tasks", json={"input": "x", "service": "nobody"})
        assert unknown.status_code == 404


class Counting(Workflow):
    """Keeps every input of its session in `ctx.store`; answers with all of them."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.gate: asyncio.Event | None = None

    @step
    async def remember(self, ctx: Context, ev: StartEvent) -> StopEvent:
        if self.gate is not None:
            await self.gate.wait()
        seen: list[Any] = await ctx.store.get("seen", default=[])
        seen = [*seen, ev.get("input")]
        await ctx.store.set("seen", seen)
        return StopEvent(result=seen)


async def settled_session(m: Mesh, session: str) -> dict[str, Any]:
    """The session once no task of it is active: its last task's end releases it in a
    write of its own, after the task is saved finished. Woken by the store's changes."""
    changed = asyncio.Event()
    store = m.control_plane.manager.store
    unwatch = store.watch(
        lambda change: changed.set() if (change.kind, change.key) == ("session", session) else None
    )
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                changed.clear()
                info: dict[str, Any] = (await m.http.get(f"/sessions/{session}")).json()
                if info["active"] is None:
                    return info
                await changed.wait()
    finally:
        unwatch()


async def test_a_session_continues_its_context_one_task_at_a_time(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        counting = Counting()
        await m.add(WorkflowService(counting, queue, service_name="counting"))
        session = (await m.http.post("/sessions")).json()["session_id"]
        counting.gate = asyncio.Event()
        first = await m.create("a", service="counting", session_id=session)
        second = await m.create("b", service="counting", session_id=session)
        await wait_status(m, first, TaskStatus.RUNNING)
        info = (await m.http.get(f"/sessions/{session}")).json()
        assert (info["active"], info["queued"]) == (first, [second])
        assert (await m.control_plane.get_task(second)).status is TaskStatus.PENDING
        counting.gate.set()
        done = await wait_status(m, second, TaskStatus.COMPLETED)
        assert done.result is not None and done.result.data["result"] == ["a", "b"]
        other = await m.create("c", service="counting")  # no session: a fresh context
        fresh = await wait_status(m, other, TaskStatus.COMPLETED)
        assert fresh.result is not None and fresh.result.data["result"] == ["c"]
        info = await settled_session(m, session)
        assert info["tasks"] == [first, second] and info["active"] is None
        assert (await m.http.delete(f"/sessions/{session}")).status_code == 204
        assert (await m.http.get(f"/sessions/{session}")).status_code == 404
        orphan = await m.http.post(
            "/tasks", json={"input": "d", "service": "counting", "session_id": session}
        )
        assert orphan.status_code == 404


def test_token_deltas_are_merged_within_a_window() -> None:
    from llama_agents.messages.runs import StreamedEvent
    from llama_agents.services.workflow_run import _Outbox

    def stream(delta: str, response: str) -> StreamedEvent:
        return StreamedEvent(
            key=delta,
            type="AgentStream",
            types=["AgentStream"],
            data={"delta": delta, "response": response, "current_agent_name": "a"},
        )

    box = _Outbox()
    for delta, response in [("Hel", "Hel"), ("lo", "Hello"), (" you", "Hello you")]:
        box.add(stream(delta, response))
    box.add(StreamedEvent(key="p", type="Progress", types=["Progress"], data={}))
    box.add(stream("!", "Hello you!"))
    merged = box.take()
    assert [(e.type, e.data.get("delta")) for e in merged] == [
        ("AgentStream", "Hello you"),
        ("Progress", None),
        ("AgentStream", "!"),
    ]
    assert merged[0].data["response"] == "Hello you"
    assert box.take() == []


@pytest.mark.parametrize("bad", [{"idle_release_s": -1}, {"event_coalesce_s": -0.1}])
async def test_bad_settings_are_refused(bad: dict[str, float]) -> None:
    from llama_agents import ConfigurationError, SimpleMessageQueue

    with pytest.raises(ConfigurationError):
        WorkflowService(Review(), SimpleMessageQueue(), **bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must be a llama-index Workflow"):
        WorkflowService(object(), SimpleMessageQueue())  # type: ignore[arg-type]


class Gated(Workflow):
    """Each run waits at a gate; counts how many runs are inside at once."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.gate = asyncio.Event()
        self.inside = 0
        self.most_inside = 0
        self.entered = 0
        self.changed = asyncio.Condition()

    @step
    async def work(self, ev: StartEvent) -> StopEvent:
        async with self.changed:
            self.inside += 1
            self.entered += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.changed.notify_all()
        try:
            await self.gate.wait()
        finally:
            self.inside -= 1
        return StopEvent(result=f"done {ev.get('input')}")


@pytest.mark.rabbitmq
async def test_max_concurrent_runs_caps_a_replica_and_the_rest_wait_in_the_broker(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str, tmp_path: Path
) -> None:
    from llama_agents.message_queues.rabbitmq.topology import queue_name
    from tests.support.broker import queue_counts

    queue = await rabbitmq_factory()
    async with mesh(queue, tmp_path) as m:
        gated = Gated()
        await m.add(WorkflowService(gated, queue, service_name="gated", max_concurrent_runs=2))
        tasks = [await m.create(f"run {n}", service="gated") for n in range(5)]
        async with asyncio.timeout(DEADLINE), gated.changed:
            await gated.changed.wait_for(lambda: gated.entered == 2)
        # Two runs are held; the other three are still messages in the service's queue,
        # not coroutines waiting in the replica.
        counts = await queue_counts(amqp_url, queue_name(exchange_name, "gated"))
        assert counts is not None and counts[0] == 3, counts
        assert gated.entered == 2
        gated.gate.set()
        for task_id in tasks:
            record = await wait_status(m, task_id, TaskStatus.COMPLETED)
            assert record.result is not None and record.result.result.startswith("done run")
        assert gated.most_inside == 2
        assert gated.entered == 5


class GatedReview(Workflow):
    """Asks for approval once its gate opens: it starts waiting only after the test says."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    @step
    async def draft(self, ev: StartEvent) -> InputRequiredEvent:
        self.started.set()
        await self.gate.wait()
        return InputRequiredEvent(prefix="Approve?")  # type: ignore[call-arg]

    @step
    async def decide(self, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=f"approved: {ev.response}")


async def test_a_run_that_starts_waiting_while_its_replica_stops_is_released_at_once(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    """Stopping drains the runs in progress; one that then asks a person is released (its
    checkpoint saved, its step acknowledged) instead of holding the stop for
    `idle_release_s` (60 s by default) or the drain's limit; the answer resumes it."""
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        gated = GatedReview()
        first = await m.add(WorkflowService(gated, queue, service_name="review"))
        task_id = await m.create("budget", service="review")
        async with asyncio.timeout(DEADLINE):
            await gated.started.wait()
        stopping = asyncio.create_task(first.deregister_from_message_queue())
        gated.gate.set()
        await asyncio.wait_for(stopping, 5.0)  # without the release: 30 s or more
        released = await m.control_plane.manager.wait_until(
            task_id, lambda r: r.run is not None and r.run.released, DEADLINE
        )
        assert released.status is TaskStatus.WAITING_FOR_INPUT
        assert first.status()["runs"] == {"held": 0, "waiting": 0}

        await m.add(WorkflowService(gated, queue, service_name="review"))
        sent = await m.http.post(
            f"/tasks/{task_id}/events",
            json={"type": "HumanResponseEvent", "data": {"response": "yes"}},
        )
        assert sent.json()["status"] == "sent"
        done = await wait_status(m, task_id, TaskStatus.COMPLETED)
        assert done.result is not None and done.result.result == "approved: yes"
