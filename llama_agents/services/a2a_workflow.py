"""A conversation with a remote A2A agent, as a llama-index workflow a `WorkflowService` runs.

So a remote agent's task is a run like any other on the mesh: its updates are the run's
streamed events (our task's event log), its questions make our task `waiting_for_input`, a
person's answer (`POST /tasks/{id}/events`, a `HumanResponseEvent`) resumes it, and while it
waits it is checkpointed and released like any waiting run: the remote task's id is all its
context holds, so any replica can send the answer on.

- `StartEvent(input=...)`: a new message to the remote (`message/stream`, or `message/send`
  when its card says it does not stream), in the remote context of the session's previous
  task there, if any (so a session is one conversation with the remote too);
- each remote `submitted`/`working` update is streamed as an `A2AStatusUpdate`, each artifact
  chunk as an `A2AArtifactUpdate`;
- the remote's `input-required` is an `InputRequiredEvent` whose `prefix` is its question;
  the `HumanResponseEvent` answering it goes to the remote as the next message in its task
  (one sent while the remote is not asking is ignored, with a warning);
- `completed`: the result is the text of its artifacts (else of its status message, or of
  the message it answered with); `failed`, `rejected`, `canceled` or `auth-required`, or a
  remote that cannot be reached: the step fails (a `TaskFailedError` with the remote's words).

A stream that ends before the remote task does is resubscribed (`tasks/resubscribe`) a few
times. A run cancelled on our side cancels the remote task (best effort).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from a2a.helpers import get_data_parts, get_message_text, get_text_parts
from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import A2AError
from workflows import Context, Workflow, step
from workflows.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)

from llama_agents.errors import TaskFailedError
from llama_agents.services.a2a_remote import RemoteAgent

logger = logging.getLogger("llama_agents.services.a2a")

#: Where the run's context keeps the remote task it talks to (its id, its context, and
#: whether it waits for an answer).
REMOTE_TASK_KEY = "a2a_remote_task"
#: How many times a stream that ended early is resubscribed before the step fails.
MAX_RESUBSCRIBES = 3

_ONGOING = frozenset({TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING})


class A2AStatusUpdate(Event):
    """The remote agent's task was accepted or is working (its words, if it said any)."""

    state: str
    text: str = ""
    remote_task_id: str = ""
    remote_context_id: str = ""


class A2AArtifactUpdate(Event):
    """A chunk of an artifact the remote agent is producing."""

    artifact_id: str
    name: str = ""
    text: str = ""
    append: bool = False
    last_chunk: bool = False
    remote_task_id: str = ""


def state_name(state: TaskState) -> str:
    """`TASK_STATE_INPUT_REQUIRED` -> `input-required` (A2A's own spelling)."""
    name: str = TaskState.Name(state)
    return name.removeprefix("TASK_STATE_").lower().replace("_", "-")


def _parts_text(parts: Any) -> str:
    """Text parts as one text; data parts as JSON when there is no text.

    Text parts are concatenated as they are: an artifact streamed in appended chunks is one
    text cut into parts, and read whole (`message/send`) it must say the same."""
    texts = get_text_parts(parts)
    if texts:
        return "".join(texts)
    return "\n".join(json.dumps(d) for d in get_data_parts(parts))


@dataclass
class _Turn:
    """What one message's exchange with the remote learned."""

    task_id: str = ""
    context_id: str = ""
    state: TaskState = TaskState.TASK_STATE_UNSPECIFIED
    status_text: str = ""
    answer: str | None = None  # the remote answered with a message, not a task
    artifacts: dict[str, str] = field(default_factory=dict)

    @property
    def ongoing(self) -> bool:
        return self.answer is None and self.state in _ONGOING

    def artifact(self, artifact: Artifact, *, append: bool) -> str:
        chunk = _parts_text(artifact.parts)
        before = self.artifacts.get(artifact.artifact_id, "") if append else ""
        self.artifacts[artifact.artifact_id] = before + chunk
        return chunk


class A2AExchange(Workflow):
    """Talks to `remote` for each run: see the module doc."""

    def __init__(self, remote: RemoteAgent, **kwargs: Any) -> None:
        super().__init__(timeout=None, **kwargs)
        self.remote = remote

    @step
    async def ask_remote(self, ctx: Context, ev: StartEvent) -> StopEvent | InputRequiredEvent:
        # A new remote task; in the remote context of the session's last one, if any (a
        # session's next task starts from the context its last run here ended with).
        last = await ctx.store.get(REMOTE_TASK_KEY, default=None)
        turn = _Turn(context_id=last["context_id"] if last else "")
        return await self._exchange(ctx, str(ev.get("input", "")), turn)

    @step(num_workers=1)
    async def answer_remote(
        self, ctx: Context, ev: HumanResponseEvent
    ) -> StopEvent | InputRequiredEvent | None:
        remote = await ctx.store.get(REMOTE_TASK_KEY, default=None)
        if not (remote and remote.get("waiting")):
            # A run takes events at any time; the remote takes an answer only when it asked.
            logger.warning(
                "an answer came while the A2A agent at %s was not asking; ignored (it is "
                "asked again when the agent asks)",
                self.remote.agent_card_url,
            )
            return None
        turn = _Turn(task_id=remote["task_id"], context_id=remote["context_id"])
        return await self._exchange(ctx, ev.response, turn)

    async def _exchange(
        self, ctx: Context, text: str, turn: _Turn
    ) -> StopEvent | InputRequiredEvent:
        """Send `text` to the remote (in `turn`'s task and context, when set) and follow
        what it says until it answers, asks, or ends the task."""
        client = await self.remote.client()
        message = Message(
            message_id=str(uuid.uuid4()),
            role=Role.ROLE_USER,
            parts=[Part(text=text)],
            task_id=turn.task_id,
            context_id=turn.context_id,
        )
        try:
            await self._follow(ctx, turn, client.send_message(SendMessageRequest(message=message)))
            for _ in range(MAX_RESUBSCRIBES):
                if not (turn.ongoing and turn.task_id and self.remote.streams):
                    break
                again = SubscribeToTaskRequest(id=turn.task_id)
                await self._follow(ctx, turn, client.subscribe(again))
        except asyncio.CancelledError:
            if turn.task_id and turn.answer is None:
                self.remote.cancel_soon(turn.task_id)
            raise
        except A2AError as exc:
            raise TaskFailedError(
                f"the A2A agent at {self.remote.agent_card_url} failed: {exc.message}"
            ) from exc
        outcome = self._outcome(turn)
        await ctx.store.set(
            REMOTE_TASK_KEY,
            {
                "task_id": turn.task_id,
                "context_id": turn.context_id,
                "waiting": isinstance(outcome, InputRequiredEvent),
            },
        )
        return outcome

    async def _follow(self, ctx: Context, turn: _Turn, responses: Any) -> None:
        """Take the remote's responses to one call, streaming what it says as it says it."""
        async with contextlib.aclosing(responses) as stream:
            async for response in stream:
                self._take(ctx, turn, response)

    def _take(self, ctx: Context, turn: _Turn, response: StreamResponse) -> None:
        if response.HasField("message"):
            turn.answer = get_message_text(response.message)
            return
        if response.HasField("task"):
            task = response.task
            turn.task_id, turn.context_id, status = task.id, task.context_id, task.status
            turn.artifacts = {}
            for artifact in task.artifacts:
                turn.artifact(artifact, append=False)
        elif response.HasField("status_update"):
            update = response.status_update
            turn.task_id, turn.context_id, status = update.task_id, update.context_id, update.status
        elif response.HasField("artifact_update"):
            update = response.artifact_update
            turn.task_id, turn.context_id = update.task_id, update.context_id
            chunk = turn.artifact(update.artifact, append=update.append)
            ctx.write_event_to_stream(
                A2AArtifactUpdate(
                    artifact_id=update.artifact.artifact_id,
                    name=update.artifact.name,
                    text=chunk,
                    append=update.append,
                    last_chunk=update.last_chunk,
                    remote_task_id=update.task_id,
                )
            )
            return
        else:
            return
        turn.state = status.state
        turn.status_text = _parts_text(status.message.parts) if status.HasField("message") else ""
        if turn.state in _ONGOING:
            ctx.write_event_to_stream(
                A2AStatusUpdate(
                    state=state_name(turn.state),
                    text=turn.status_text,
                    remote_task_id=turn.task_id,
                    remote_context_id=turn.context_id,
                )
            )

    def _outcome(self, turn: _Turn) -> StopEvent | InputRequiredEvent:
        if turn.answer is not None:
            return StopEvent(result=turn.answer)
        where = f"the A2A agent at {self.remote.agent_card_url}"
        if turn.state == TaskState.TASK_STATE_COMPLETED:
            text = "\n".join(t for t in turn.artifacts.values() if t)
            return StopEvent(result=text or turn.status_text)
        if turn.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            question = turn.status_text or f"{where} asks for input"
            return InputRequiredEvent(prefix=question)
        said = f": {turn.status_text}" if turn.status_text else ""
        if turn.state == TaskState.TASK_STATE_AUTH_REQUIRED:
            raise TaskFailedError(
                f"{where} asks for authentication on task {turn.task_id} (auth-required), "
                f"which this service cannot give{said}"
            )
        if turn.state in _ONGOING or turn.state == TaskState.TASK_STATE_UNSPECIFIED:
            raise TaskFailedError(
                f"{where} stopped answering with task {turn.task_id or '?'} still "
                f"{state_name(turn.state)}"
            )
        raise TaskFailedError(f"{where}: task {turn.task_id} {state_name(turn.state)}{said}")
