"""One workflow run on a replica: started or resumed, streamed, checkpointed, released.

`WorkflowRun` drives a llama-index workflow handler and reports what happens through one
callback (`report`), in order:

- the events the run writes to its stream, batched (token deltas merged) within a short
  window so a chatty agent sends a few messages, not one per token;
- a checkpoint of the run's context after every step that finished and whenever the run
  waits (idle, waiting for an event), each in the same update as the events before it;
- `released`: after `idle_release_s` of waiting, a last checkpoint, then the run is dropped
  from memory; whoever gets the next input resumes it from that checkpoint.

The caller acknowledges the step's message only after `run()` returned, so every checkpoint
the run depends on was confirmed by the broker before that.

A run reports nothing until it has something to say: the replica holding it is named by its
first update (inputs sent before then wait at the control plane; cancels reach every
replica). The step that ends the run is not checkpointed, and the events streamed since the
last update travel with the result (`RunOutcome.events`): one message, not three. A replica
dying before that result is out runs that last step again, like any step in progress.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.agent.workflow import AgentStream
from workflows import Context, Workflow
from workflows.errors import WorkflowCancelledByUser
from workflows.events import (
    Event,
    InputRequiredEvent,
    InternalDispatchEvent,
    StepState,
    StepStateChanged,
    StopEvent,
    UnhandledEvent,
    WorkflowIdleEvent,
)
from workflows.handler import WorkflowHandler
from workflows.runtime.types.ticks import TickIdleCheck, TickIdleRelease

from llama_agents.messages import TaskDefinition
from llama_agents.messages.runs import RunInput, RunUpdate, StreamedEvent
from llama_agents.services.workflow_codec import WorkflowCodec
from llama_agents.services.workflow_snapshots import ContextSnapshots

logger = logging.getLogger("llama_agents.services.workflow")

Report = Callable[[RunUpdate], Awaitable[None]]


class RunEnd(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    RELEASED = "released"
    CANCELLED = "cancelled"


@dataclass
class RunOutcome:
    """How a run ended on this replica; `result` is the StopEvent's result when completed."""

    end: RunEnd
    result: Any = None
    error: str | None = None
    context: Context | None = None
    exception: BaseException | None = None
    #: Events streamed since the last update: they go out with the result, in one message.
    events: list[StreamedEvent] = field(default_factory=list)


@dataclass
class _Outbox:
    """Events not reported yet, with consecutive token deltas merged."""

    events: list[StreamedEvent] = field(default_factory=list)

    def add(self, event: StreamedEvent) -> None:
        last = self.events[-1] if self.events else None
        if (
            last is not None
            and event.type == last.type == AgentStream.__name__
            and last.data.get("current_agent_name") == event.data.get("current_agent_name")
            and not last.data.get("tool_calls")
            and not event.data.get("tool_calls")
        ):
            # One merged delta carries the text of both; `response` is the latest whole text.
            merged = dict(event.data)
            merged["delta"] = str(last.data.get("delta") or "") + str(event.data.get("delta") or "")
            merged["thinking_delta"] = _join(
                last.data.get("thinking_delta"), event.data.get("thinking_delta")
            )
            self.events[-1] = last.model_copy(update={"data": merged})
            return
        self.events.append(event)

    def take(self) -> list[StreamedEvent]:
        taken, self.events = self.events, []
        return taken


def _join(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return str(a) + str(b)


class WorkflowRun:
    """Drives one run of `workflow` for `task` (one step of it) on this replica.

    Args:
        workflow: the workflow the service serves.
        codec: its events and context as JSON.
        task: the step to run; `task.resume` continues a checkpointed run or a session.
        report: publishes an update and returns once the broker confirmed it.
        holder: this replica's address, where the control plane sends inputs and cancels.
        idle_release_s: how long a waiting run stays in memory before it is released
            (None: never).
        coalesce_s: the window within which streamed events are batched (0: no batching).
        keep_context: report the context when the run ends (a session continues from it).
    """

    def __init__(
        self,
        workflow: Workflow,
        codec: WorkflowCodec,
        task: TaskDefinition,
        *,
        report: Report,
        holder: str,
        idle_release_s: float | None,
        coalesce_s: float,
    ) -> None:
        self.workflow = workflow
        self.codec = codec
        self.task = task
        self.step_id = task.step_id or task.task_id
        self._report = report
        self.holder = holder
        self.idle_release_s = idle_release_s
        self.coalesce_s = coalesce_s
        self._handler: WorkflowHandler | None = None
        self._outbox = _Outbox()
        #: The run's context as JSON, for its checkpoints and a session's next turn.
        self.snapshots = ContextSnapshots(codec)
        self._sequence = 0
        self._emitted = 0
        self._lock = asyncio.Lock()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._release_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._waiting = False
        self._prompt: StreamedEvent | None = None
        self._sent: list[str] = []  # inputs sent in, not yet seen taken by the runtime
        self._applied: list[str] = []  # inputs whose effect the next checkpoint includes
        self._releasing = False
        self._released = asyncio.Event()
        self._cancelled = False
        #: The step that ends the run finished: what is streamed from now on goes with
        #: the result, and no update goes out on its own.
        self._ending = False

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def waiting(self) -> bool:
        """True while the run is idle, waiting for an event to be sent in."""
        return self._waiting

    # -- the run ----------------------------------------------------------------------

    def _start(self) -> WorkflowHandler:
        resume = self.task.resume
        if resume is not None and resume.checkpoint is not None:
            ctx: Context = Context.from_dict(
                self.workflow, resume.checkpoint["context"], serializer=self.codec.serializer
            )
            if resume.checkpoint["context"].get("is_running"):
                return self.workflow.run(ctx=ctx)  # continue where the checkpoint left it
            return self.workflow.run(ctx=ctx, start_event=self.codec.start_event(self.task))
        return self.workflow.run(
            ctx=Context(self.workflow, serializer=self.codec.serializer),
            start_event=self.codec.start_event(self.task),
        )

    async def run(self) -> RunOutcome:
        """Run (or resume) until the run ends, is released, or is cancelled."""
        handler = self._handler = self._start()
        resume = self.task.resume
        for run_input in resume.inputs if resume is not None else []:
            self.send_input(run_input)
        if resume is not None and resume.checkpoint is not None and not resume.inputs:
            self._prompt = resume.prompt
            # A run restored where it waited has nothing to do, and the runtime says so only
            # after a step: ask it now, so the run is reported waiting again (and released).
            adapter = handler.ctx._face._external_adapter  # type: ignore[union-attr]
            await adapter.send_event(TickIdleCheck())
        pump = asyncio.create_task(self._pump(handler), name=f"run-events-{self.task_id}")
        try:
            result = await handler
        except WorkflowCancelledByUser:
            await _finish(pump)
            return RunOutcome(RunEnd.CANCELLED, context=handler.ctx)
        except Exception as exc:
            await _finish(pump)
            if self._released.is_set():
                return RunOutcome(RunEnd.RELEASED)
            logger.warning("workflow run for task %s failed: %s", self.task_id, exc)
            return RunOutcome(
                RunEnd.FAILED,
                error=f"{type(exc).__name__}: {exc}",
                context=handler.ctx,
                exception=exc,
                events=await self._take_rest(),
            )
        finally:
            self._stop_timers()
        if self._released.is_set() or type(result).__name__ == "IdleReleasedEvent":
            pump.cancel()  # a released run's stream never ends by itself
            await asyncio.gather(pump, return_exceptions=True)
            return RunOutcome(RunEnd.RELEASED)
        await _finish(pump)
        if self._cancelled:
            return RunOutcome(RunEnd.CANCELLED, context=handler.ctx)
        return RunOutcome(
            RunEnd.COMPLETED, result=result, context=handler.ctx, events=await self._take_rest()
        )

    async def _pump(self, handler: WorkflowHandler) -> None:
        async for event in handler.stream_events(expose_internal=True):
            await self._on_event(event)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, InternalDispatchEvent):
            if self._sent:
                # The runtime has taken what was sent before this: checkpoints now include it.
                self._applied.extend(self._sent)
                self._sent.clear()
            if isinstance(event, StepStateChanged):
                if event.step_state is StepState.RUNNING:
                    self._set_waiting(False)
                elif event.step_state is StepState.NOT_RUNNING:
                    if event.output_event_name in self.codec.stop_event_names:
                        # The run ends: its result carries the rest, and no checkpoint.
                        self._ending = True
                        self._cancel_flush_timer()
                        return
                    await self._flush(checkpoint=True)
            elif isinstance(event, WorkflowIdleEvent):
                self._set_waiting(True)
                await self._flush(checkpoint=True)
            elif isinstance(event, UnhandledEvent):
                logger.warning(
                    "task %s: no step of the workflow takes a %s",
                    self.task_id,
                    event.event_type,
                )
            return
        if isinstance(event, StopEvent):
            return  # the result is reported as the step's result
        if self._prompt is not None and not isinstance(event, InputRequiredEvent):
            self._prompt = None  # the run moved on from its last question
        encoded = self.codec.encode_event(event, key=f"{self.step_id}:{self._emitted}")
        self._emitted += 1
        if isinstance(event, InputRequiredEvent):
            self._prompt = encoded
        self._outbox.add(encoded)
        self._schedule_flush()

    # -- waiting and release ----------------------------------------------------------

    def _set_waiting(self, waiting: bool) -> None:
        if waiting == self._waiting:
            return
        self._waiting = waiting
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        if waiting and self.idle_release_s is not None:
            loop = asyncio.get_running_loop()
            self._release_timer = loop.call_later(self.idle_release_s, self._start_release)

    def _start_release(self) -> None:
        self._release_timer = None
        if self._waiting and not self._releasing:
            self._spawn(self.release())

    def release_when_waiting(self) -> None:
        """Release the run as soon as it waits (now, if it does): its replica is stopping
        and must not hold a run for a person. A run nobody follows is never released."""
        if self.idle_release_s is None:
            return
        self.idle_release_s = 0.0
        if self._waiting:
            if self._release_timer is not None:
                self._release_timer.cancel()
            self._start_release()

    async def release(self) -> None:
        """Checkpoint and drop the run from memory (it is waiting; an input will resume it)."""
        if self._releasing or self._handler is None:
            return
        self._releasing = True
        await self._flush(checkpoint=True, released=True)
        self._released.set()
        adapter = self._handler.ctx._face._external_adapter  # type: ignore[union-attr]
        await adapter.send_event(TickIdleRelease())
        logger.info("task %s: waiting run released from memory", self.task_id)

    # -- input and cancel -------------------------------------------------------------

    def send_input(self, run_input: RunInput) -> bool:
        """Deliver an input to the run; False when this replica no longer holds it."""
        handler = self._handler
        if handler is None or self._releasing or handler.is_done():
            return False
        event = self.codec.decode_event(run_input.type, run_input.data)
        handler.ctx.send_event(event, step=run_input.step)
        self._sent.append(run_input.input_id)
        self._set_waiting(False)
        return True

    def cancel(self) -> None:
        """Stop the run (it ends with `RunEnd.CANCELLED`)."""
        handler = self._handler
        self._cancelled = True
        if handler is not None and not handler.is_done():
            self._spawn(handler.cancel_run())

    # -- reporting --------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._ending:
            return  # the result takes what is left
        if self.coalesce_s <= 0:
            self._spawn(self._flush())
        elif self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(self.coalesce_s, lambda: self._spawn(self._flush()))

    async def _flush(self, *, checkpoint: bool = False, released: bool = False) -> None:
        """Report buffered events, with a checkpoint when asked; in order, one at a time."""
        async with self._lock:
            self._cancel_flush_timer()
            if not checkpoint and not self._outbox.events:
                return
            await self._send_update(checkpoint=checkpoint, released=released)

    async def _take_rest(self) -> list[StreamedEvent]:
        """The events not reported yet (after any update on its way), for the result."""
        async with self._lock:
            self._cancel_flush_timer()
            return self._outbox.take()

    def _cancel_flush_timer(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    @property
    def next_sequence(self) -> int:
        """The sequence number of the run's next update (its final one carries the result)."""
        return self._sequence

    async def _send_update(self, *, checkpoint: bool = False, released: bool = False) -> None:
        body = await self.checkpoint() if checkpoint else None
        update = RunUpdate(
            task_id=self.task_id,
            step_id=self.step_id,
            sequence=self._sequence,
            holder=None if released else self.holder,
            events=self._outbox.take(),
            checkpoint=body,
            waiting=self._waiting,
            released=released,
            prompt=self._prompt if self._waiting else None,
            applied_inputs=list(self._applied) if body is not None else [],
        )
        self._sequence += 1
        await self._report(update)

    async def checkpoint(self) -> dict[str, Any] | None:
        """The run's context as JSON (None before it started)."""
        if self._handler is None:
            return None
        return await self.snapshots.take(self._handler.ctx)

    # -- housekeeping -----------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    def _stop_timers(self) -> None:
        for timer in (self._flush_timer, self._release_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._release_timer = None


#: Seconds to wait for a finished run's last streamed events before giving up on them.
_STREAM_DRAIN_SECONDS = 10.0


async def _finish(pump: asyncio.Task[None]) -> None:
    """Let the event pump reach the end of a finished run's stream (bounded)."""
    done, _ = await asyncio.wait([pump], timeout=_STREAM_DRAIN_SECONDS)
    if not done:
        logger.warning("a finished run's event stream did not end; dropping its tail")
        pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("workflow run background work failed", exc_info=task.exception())
