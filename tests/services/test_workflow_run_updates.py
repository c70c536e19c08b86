"""What a run sends the control plane, message by message: nothing before it has something to
say, one update per step boundary with its checkpoint, and no update for the step that ends the
run: the events streamed since the last update travel with the result (one message, not three).
The message count is the run's cost on the broker and the control plane (see
benchmarks/workflow_runs.py)."""

from __future__ import annotations

from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StepState, StepStateChanged, StopEvent

from llama_agents.messages import TaskDefinition
from llama_agents.messages.runs import RunUpdate
from llama_agents.services.workflow_codec import WorkflowCodec
from llama_agents.services.workflow_run import RunEnd, WorkflowRun


class Progress(Event):
    text: str


class Drafted(Event):
    text: str


class Done(StopEvent):
    """A stop event of the workflow's own: the run ends on it like on `StopEvent`."""

    text: str


class TwoSteps(Workflow):
    @step
    async def draft(self, ctx: Context, ev: StartEvent) -> Drafted:
        ctx.write_event_to_stream(Progress(text="drafted"))
        return Drafted(text=f"draft of {ev.get('input')}")

    @step
    async def finish(self, ctx: Context, ev: Drafted) -> Done:
        ctx.write_event_to_stream(Progress(text="finished"))
        return Done(text=ev.text)


def two_step_run() -> tuple[WorkflowRun, list[RunUpdate]]:
    """A run of `TwoSteps` on replica 1, and the updates it reports."""
    workflow = TwoSteps()
    updates: list[RunUpdate] = []

    async def report(update: RunUpdate) -> None:
        updates.append(update)

    run = WorkflowRun(
        workflow,
        WorkflowCodec(workflow),
        TaskDefinition(input="notes", task_id="t-1", step_id="s-1"),
        report=report,
        holder="svc.replica.1",
        idle_release_s=60,
        coalesce_s=0.05,
    )
    return run, updates


async def test_a_two_step_run_sends_one_update_and_its_last_events_go_with_the_result() -> None:
    run, updates = two_step_run()
    outcome = await run.run()

    assert outcome.end is RunEnd.COMPLETED
    assert isinstance(outcome.result, Done) and outcome.result.text == "draft of notes"
    # One update: the first step's event with the checkpoint taken after it, naming the holder.
    [update] = updates
    assert [(e.type, e.data) for e in update.events] == [("Progress", {"text": "drafted"})]
    assert update.checkpoint is not None and update.holder == "svc.replica.1"
    assert update.sequence == 0
    # The last step's event is left for the result's message, after the first's.
    assert [(e.type, e.data) for e in outcome.events] == [("Progress", {"text": "finished"})]
    assert [e.key for e in [*update.events, *outcome.events]] == ["s-1:0", "s-1:1"]


async def test_events_streamed_after_the_last_step_finished_wait_for_the_result() -> None:
    """The coalescing window may end while the finished run's result is on its way (a busy
    loop takes longer than 50 ms): the events still go with the result, not in an update of
    their own (which cost a message, a store write and a stream write at the control plane)."""
    run, updates = two_step_run()
    # What the runtime streams as the last step ends: its event, then the step's end.
    await run._on_event(Progress(text="finished"))
    assert run._flush_timer is not None  # the window is open while the step runs
    await run._on_event(
        StepStateChanged(
            name="finish",
            step_state=StepState.NOT_RUNNING,
            worker_id="w-1",
            input_event_name=str(Drafted),
            output_event_name=str(Done),  # as the runtime names it
        )
    )
    assert run._flush_timer is None  # the result, not the window, takes them now
    await run._on_event(Progress(text="late"))  # streamed while the run winds down
    assert run._flush_timer is None

    rest = await run._take_rest()
    assert updates == []
    assert [(e.type, e.data["text"]) for e in rest] == [
        ("Progress", "finished"),
        ("Progress", "late"),
    ]
