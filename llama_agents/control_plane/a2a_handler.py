"""The mesh behind the A2A SDK's request handler: A2A requests carried out by the task manager.

Why the SDK's `RequestHandler` and not its `AgentExecutor` with `DefaultRequestHandler`: that
pair keeps a second state machine per process (an in-memory `ActiveTaskRegistry` writing its
own `TaskStore`), which would disagree with ours on cancels, failures and restarts, and would
tie a task waiting for input to the replica that started it. Our control plane already is a
task manager with a durable store and an event log any replica reads. So ours is the only
source of truth and nothing A2A-specific is stored: an A2A task is a view of our record
(`a2a_views.py`), an A2A stream a view of the task's event log, followed as it is appended
(`EventLog.follow_batches`, never polled). The SDK still does all of the protocol: JSON-RPC
and its v0.3 names, SSE, the types, the errors, the card route.

- `message/send` without `taskId` creates a task from the message's text (in the service its
  metadata names by `skill_id`, else routed by the orchestrator) in the session its
  `contextId` names (created when new: a context is a session), and answers once the task
  ends or asks for input (`input-required`, the question as the status message).
- A message with `taskId` is the answer to the task's question: it is sent into the run as
  its `HumanResponseEvent` (our `send_event`), and the task goes on.
- `message/stream` is the same, streamed: the task's logged events as `working` status
  updates, an event asking for input as `input-required`, the result as an artifact, then
  the final status. `tasks/resubscribe` follows a running task the same way.
- `tasks/get` reads our record; `tasks/cancel` is our cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncGenerator

from a2a.helpers import get_data_parts, get_message_text
from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import RequestHandler, validate_request_params
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    UnsupportedOperationError,
)
from a2a.utils.errors import TaskNotFoundError as A2ATaskNotFoundError
from a2a.utils.task import apply_history_length, validate_history_length

from llama_agents.control_plane.a2a_card import skill_services
from llama_agents.control_plane.a2a_views import (
    asks_for_input,
    context_of,
    event_update,
    final_events,
    task_view,
    working,
)
from llama_agents.control_plane.event_log import TASK_FINISHED
from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.control_plane.models import NewTask
from llama_agents.control_plane.streams import log_complete
from llama_agents.control_plane.tasks import TaskManager
from llama_agents.errors import (
    EventRejectedError,
    ServiceNotFoundError,
    SessionExistsError,
    TaskFinishedError,
    TaskNotFoundError,
    WorkflowInputError,
)
from llama_agents.messages.records import (
    KEEPALIVE_SECONDS,
    MAX_WAIT_SECONDS,
    TaskRecord,
    TaskStatus,
)

#: The event a message in a task is sent into its run as.
HUMAN_RESPONSE = "HumanResponseEvent"
#: What a context id (a session id) may look like: it is part of our URLs.
_ID = re.compile(r"^[^/\s]{1,200}$")
_NO_PUSH = "push notifications are not supported: stream the task (message/stream) instead"


class MeshRequestHandler(RequestHandler):
    """Carries out A2A requests with the control plane's task manager (see the module doc).

    Args:
        control_plane: the served control plane.
        wait_s: the longest a blocking `message/send` waits for its task to end or ask for
            input; after that it answers with the task as it is (`working`), which the
            client follows with `tasks/get` or `tasks/resubscribe`.
    """

    def __init__(self, control_plane: ControlPlaneFace, *, wait_s: float = MAX_WAIT_SECONDS):
        self.control_plane = control_plane
        self.wait_s = wait_s

    @property
    def manager(self) -> TaskManager:
        return self.control_plane.manager

    # -- messages ---------------------------------------------------------------------

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        validate_history_length(params.configuration)
        task_id, after, _ = await self._take(params)
        last: Event | None = None
        if not params.configuration.return_immediately:
            try:
                async with (
                    asyncio.timeout(self.wait_s),
                    contextlib.aclosing(self._turn(task_id, after)) as turn,
                ):
                    async for event in turn:
                        last = event
            except TimeoutError:
                pass
        task = task_view(await self._read(task_id))
        if (
            isinstance(last, TaskStatusUpdateEvent)
            and last.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        ):
            # The run asked; its record may say so a moment later (its next update).
            task.status.CopyFrom(last.status)
        return apply_history_length(task, params.configuration)

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        validate_history_length(params.configuration)
        task_id, after, created = await self._take(params)
        if created:
            task = task_view(await self._read(task_id))
            yield apply_history_length(task, params.configuration)
        else:
            yield working(task_id, context_of(await self._read(task_id)))
        async with contextlib.aclosing(self._turn(task_id, after)) as turn:
            async for event in turn:
                yield event

    async def _take(self, params: SendMessageRequest) -> tuple[str, int, bool]:
        """Start a task for the message, or send it into the task it names: the task's id,
        the last sequence of its log before the message, and whether the task is new."""
        message = params.message
        text = _text_of(message)
        if message.task_id:
            record = await self._read(message.task_id)
            if message.context_id and message.context_id != context_of(record):
                raise InvalidParamsError(
                    message=f"task {record.task_id} is in context {context_of(record)!r}, "
                    f"not {message.context_id!r}"
                )
            if record.status.finished:
                raise UnsupportedOperationError(
                    message=f"task {record.task_id} is {record.status.value}: it takes no more "
                    "messages (send a new message in its context to go on)"
                )
            after = await self.manager.log.store.last_sequence(record.task_id)
            try:
                await self.manager.runs.send_event(
                    record.task_id, HUMAN_RESPONSE, {"response": text}
                )
            except TaskFinishedError as exc:
                raise UnsupportedOperationError(message=str(exc)) from exc
            except EventRejectedError as exc:
                raise InvalidParamsError(message=str(exc)) from exc
            return record.task_id, after, False
        skill = _skill_of(params)
        if skill is not None and skill not in {
            d.service_name for d in skill_services(self.control_plane)
        }:
            raise InvalidParamsError(
                message=f"no skill {skill!r}: the agent card lists the skills",
                data={"skill_id": skill},
            )
        context_id = message.context_id or str(uuid.uuid4())
        if not _ID.match(context_id):
            raise InvalidParamsError(message="contextId must be 1-200 characters, no / or spaces")
        with contextlib.suppress(SessionExistsError):  # exists: a later message in it
            await self.manager.sessions.create(context_id)  # an A2A context is a session
        try:
            record = await self.manager.create(
                NewTask(input=text, service=skill, session_id=context_id)
            )
        except (ServiceNotFoundError, WorkflowInputError) as exc:
            raise InvalidParamsError(message=str(exc)) from exc
        return record.task_id, 0, True

    async def _turn(self, task_id: str, after: int) -> AsyncGenerator[Event, None]:
        """The task's events logged after `after`, as A2A events, as they are appended, until
        the task asks for input (`input-required`) or ends (its result and final status)."""
        manager = self.manager

        async def finished() -> bool:
            return await log_complete(self.control_plane, task_id)

        context_id = context_of(await self._read(task_id))
        batches = manager.log.follow_batches(
            task_id,
            after,
            is_finished=finished,
            heartbeat=KEEPALIVE_SECONDS,
            stopping=self.control_plane.stopping,
        )
        async with contextlib.aclosing(batches):  # a reader leaves the log as it returns
            async for rows in batches:
                for row in rows or ():  # None: idle (the SSE layer sends its own pings)
                    if row.body.get("type") == TASK_FINISHED:
                        for event in final_events(await self._read(task_id)):
                            yield event
                        return
                    yield event_update(task_id, context_id, row.sequence, row.body)
                    if asks_for_input(row.body):
                        return
        record = await self._read(task_id)  # the log ended without its terminal event
        if record.status.finished:
            for event in final_events(record):
                yield event

    # -- tasks ------------------------------------------------------------------------

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        validate_history_length(params)
        return apply_history_length(task_view(await self._read(params.id)), params)

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        record = await self._read(params.id)
        if not record.status.finished:
            record = await self.manager.cancel(params.id)
            if record.status is TaskStatus.CANCELLED:
                return task_view(record)
        # Ended before (or while) it was asked: A2A cancels only tasks that have not.
        raise TaskNotCancelableError(message=f"task {params.id} is {record.status.value}")

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        record = await self._read(params.id)
        if record.status.finished:
            raise UnsupportedOperationError(
                message=f"task {params.id} is {record.status.value}: nothing more will come"
            )
        after = await self.manager.log.store.last_sequence(params.id)
        yield task_view(record)
        async with contextlib.aclosing(self._turn(params.id, after)) as turn:
            async for event in turn:
                yield event

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        raise UnsupportedOperationError(
            message="tasks/list is not served here; the control plane's GET /tasks lists tasks"
        )

    async def _read(self, task_id: str) -> TaskRecord:
        try:
            return await self.manager.read(task_id)
        except TaskNotFoundError as exc:
            raise A2ATaskNotFoundError(message=str(exc)) from exc

    # -- what this agent does not offer -----------------------------------------------

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError(message=_NO_PUSH)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError(message=_NO_PUSH)

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError(message=_NO_PUSH)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError(message=_NO_PUSH)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise UnsupportedOperationError(
            message="no extended card: the public card, behind the API key, is the whole card"
        )


def _text_of(message: Message) -> str:
    """A message's text parts (its data parts as JSON when it has no text)."""
    text = get_message_text(message)
    if not text.strip():
        data = get_data_parts(message.parts)
        text = json.dumps(data[0] if len(data) == 1 else data) if data else ""
    if not text.strip():
        raise InvalidParamsError(message="the message has no text (or data) part")
    return text


def _skill_of(params: SendMessageRequest) -> str | None:
    """The skill the message (or its request) names in its metadata, if any."""
    for metadata in (params.message.metadata, params.metadata):
        if "skill_id" in metadata:
            skill = metadata["skill_id"]
            if not isinstance(skill, str) or not skill:
                raise InvalidParamsError(message="skill_id must be a skill's id (a string)")
            return skill
    return None
