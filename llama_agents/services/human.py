"""`HumanService`: a step (or a tool call) that waits for a person.

A request is answered by whichever comes first: `fn_input` (any async function; the default
asks on the console: one reader per process, each prompt labelled with its task, see
human_console.py), an answer posted over HTTP (`POST /tasks/{id}/handle`, what the monitor
sends), an answer sent through the control plane (`POST /tasks/{id}/events` with a
`HumanResponseEvent`, `llama-agents tasks respond`), or the timeout, which answers with
`timeout_answer` (or fails the step when that is None). Whatever loses is withdrawn: a console
prompt leaves the screen.

A step of the control plane's is reported waiting for input (its task shows the question).
After `release_after_s` without an answer the request is released: the step is acknowledged
and nothing is held in this process (a person may answer tomorrow, long after RabbitMQ's
consumer timeout); the answer, sent through the control plane, comes back as a new step that
any replica answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException
from llama_index.core.llms import ChatMessage
from pydantic import BaseModel, Field

from llama_agents.errors import ConfigurationError, HumanRequestNotFoundError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import (
    CONTROL_PLANE_MESSAGE_TYPE,
    ActionTypes,
    HumanResponse,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
)
from llama_agents.messages.envelope import CONTROL_PLANE_PUBLISHER, utc_now
from llama_agents.messages.runs import RunInput, RunUpdate, StreamedEvent
from llama_agents.services.base import BaseService, failed_result
from llama_agents.services.human_console import Console, console_input

logger = logging.getLogger("llama_agents.services")

HumanInputFn = Callable[[str], Awaitable[str]]

#: How long a finished request waits for its `fn_input` to be withdrawn (cancelled).
WITHDRAW_TIMEOUT = 5.0

#: What a human service tells the control plane it accepts: a person's answer.
HUMAN_EVENTS: dict[str, Any] = {
    "start_event": {"type": "StartEvent", "schema": {"type": "object"}},
    "stop_event": {"type": "StopEvent", "schema": {"type": "object"}},
    "events": [
        {
            "type": "HumanResponseEvent",
            "types": ["HumanResponseEvent"],
            "schema": {
                "type": "object",
                "properties": {"response": {"type": "string"}},
                "required": ["response"],
            },
        }
    ],
}

HELP_REQUEST_TEMPLATE = (
    "Your assistance is needed. Please respond to the request provided below:\n"
    "===\n\n{input_str}\n\n===\n"
)


class HumanRequest(BaseModel):
    """A request waiting for a person, as `GET /tasks` lists it."""

    id_: str = Field(default_factory=lambda: uuid.uuid4().hex)
    task_id: str
    step_id: str | None = None
    input: str
    prompt: str
    created_at: datetime = Field(default_factory=utc_now)


class HumanService(BaseService):
    """Routes a step to a person and returns what they answered.

    Args:
        fn_input: `async (prompt) -> answer`; default `console_input`. It may fail (no
            console in a container); then only HTTP answers and the timeout remain.
        human_input_prompt: the prompt, with `{input_str}` for the step's input.
        timeout: seconds to wait for an answer (None: forever). Once a request was released
            it is the control plane that keeps time: the step's deadline fails the task.
        timeout_answer: the answer given when nobody answered in time; None fails the step.
        release_after_s: seconds a control-plane step waits in this process before it is
            released (None: never; keep it under RabbitMQ's consumer timeout, 30 min).
    """

    service_kind = "human"

    def __init__(
        self,
        message_queue: BaseMessageQueue,
        description: str = "Answers questions that need a person.",
        service_name: str = "default_human_service",
        fn_input: HumanInputFn | None = None,
        human_input_prompt: str = HELP_REQUEST_TEMPLATE,
        *,
        timeout: float | None = None,
        timeout_answer: str | None = "No person answered in time.",
        prompt: list[ChatMessage] | None = None,
        host: str | None = None,
        port: int | None = None,
        max_concurrent_tasks: int = 10,
        release_after_s: float | None = 600.0,
    ) -> None:
        if "{input_str}" not in human_input_prompt:
            raise ConfigurationError("human_input_prompt must contain {input_str}")
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout}")
        if release_after_s is not None and release_after_s < 0:
            raise ConfigurationError(f"release_after_s must be >= 0, got {release_after_s}")
        super().__init__(
            message_queue,
            service_name,
            description,
            prompt=prompt,
            host=host,
            port=port,
            max_concurrent_tasks=max_concurrent_tasks,
            step_timeout=timeout,
        )
        self.release_after_s = release_after_s
        self.fn_input = fn_input or console_input
        self.human_input_prompt = human_input_prompt
        self.timeout = timeout
        self.timeout_answer = timeout_answer
        self._waiting: dict[str, tuple[HumanRequest, asyncio.Future[str]]] = {}
        self._changed = asyncio.Condition()

    @property
    def service_definition(self) -> ServiceDefinition:
        definition = super().service_definition
        definition.workflow = HUMAN_EVENTS
        return definition

    # -- steps of the control plane: waiting reported, released, answered later --------

    async def handle_step(self, message: QueueMessage, task: TaskDefinition) -> None:
        resume = task.resume
        if resume is not None and resume.inputs:
            # Answered through the control plane after the request was released.
            answer = str(resume.inputs[-1].data.get("response", ""))
            await self.send_result(
                message, TaskResult(task_id=task.task_id, step_id=task.step_id, result=answer)
            )
            return
        followed = message.reply_to is None and message.publisher_id == CONTROL_PLANE_PUBLISHER
        if not followed:
            await super().handle_step(message, task)
            return
        result = await self._ask_for(task, report=True)
        if result is not None:
            await self.send_result(message, result)

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        result = await self._ask_for(task, report=False)
        assert result is not None  # not released: only reported requests are
        return result

    async def on_run_input(self, run_input: RunInput) -> None:
        """An answer sent through the control plane for a request shown here."""
        for request, answered in list(self._waiting.values()):
            if request.task_id == run_input.task_id and not answered.done():
                answered.set_result(str(run_input.data.get("response", "")))
                return
        await super().on_run_input(run_input)  # not here (released): hand it back

    async def _report(self, task: TaskDefinition, sequence: int, **fields: Any) -> None:
        update = RunUpdate(
            task_id=task.task_id,
            step_id=task.step_id or task.task_id,
            sequence=sequence,
            **fields,
        )
        await self.publish(
            QueueMessage(
                type=CONTROL_PLANE_MESSAGE_TYPE,
                action=ActionTypes.RUN_UPDATE,
                data=update.model_dump(mode="json"),
            )
        )

    # -- requests -----------------------------------------------------------------------

    def pending(self) -> list[HumanRequest]:
        """The requests waiting for an answer, oldest first."""
        return sorted((r for r, _ in self._waiting.values()), key=lambda r: r.created_at)

    async def wait_for_request(self, timeout: float = 10.0) -> HumanRequest:
        """The oldest waiting request, once there is one (for UIs and tests)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: bool(self._waiting))
        return self.pending()[0]

    def answer(self, request_id: str, response: HumanResponse | str) -> None:
        """Answer a waiting request (what `POST /tasks/{id}/handle` does)."""
        entry = self._waiting.get(request_id)
        if entry is None:
            raise HumanRequestNotFoundError(request_id)
        text = response.result if isinstance(response, HumanResponse) else response
        if not entry[1].done():
            entry[1].set_result(text)

    async def _ask_for(self, task: TaskDefinition, *, report: bool) -> TaskResult | None:
        """Ask a person; the result, or None when the request was released (reported only)."""
        request = HumanRequest(
            task_id=task.task_id,
            step_id=task.step_id,
            input=task.input,
            prompt=self.human_input_prompt.format(input_str=task.input),
        )
        prompt = StreamedEvent(
            key=f"{task.step_id}:prompt",
            type="InputRequiredEvent",
            types=["InputRequiredEvent"],
            data={"prefix": request.prompt},
        )
        if report:
            await self._report(
                task, 0, holder=self.control_address, waiting=True, prompt=prompt, events=[prompt]
            )
        answered: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        async with self._changed:
            self._waiting[request.id_] = (request, answered)
            self._changed.notify_all()
        asking = asyncio.create_task(self._ask(request, answered))
        hold = self.timeout
        if report and self.release_after_s is not None:
            hold = self.release_after_s if hold is None else min(hold, self.release_after_s)
        try:
            async with asyncio.timeout(hold):
                answer = await answered
        except TimeoutError:
            released = hold is not None and (self.timeout is None or hold < self.timeout)
            if report and released:
                # Nobody answered yet: release the request; an answer resumes it later. It
                # leaves this process first, so no person answers here what the control
                # plane already counts as released (that answer would be lost).
                await self._withdraw(request, asking)
                await self._report(
                    task,
                    1,
                    waiting=True,
                    released=True,
                    prompt=prompt,
                    checkpoint={"request": request.model_dump(mode="json")},
                )
                logger.info("%s: request for task %s released", self, task.task_id)
                return None
            if self.timeout_answer is None:
                return failed_result(task, f"no person answered within {self.timeout}s")
            answer = self.timeout_answer
        finally:
            await self._withdraw(request, asking)
        return TaskResult(task_id=task.task_id, step_id=task.step_id, result=answer)

    async def _withdraw(self, request: HumanRequest, asking: asyncio.Task[None]) -> None:
        """Stop listing a request and stop asking for it (idempotent)."""
        self._waiting.pop(request.id_, None)
        # Withdrawn before returning: the console must not take a line for this request.
        asking.cancel()
        await asyncio.wait({asking}, timeout=WITHDRAW_TIMEOUT)

    async def _ask(self, request: HumanRequest, answered: asyncio.Future[str]) -> None:
        try:
            if self.fn_input is console_input:
                label = f"{self.service_name}: task {request.task_id} (request {request.id_[:8]})"
                answer = await Console.for_stdin().ask(request.prompt, label)
            else:
                answer = await self.fn_input(request.prompt)
        except (EOFError, OSError) as exc:
            logger.info("%s: no console to ask on (%s); waiting for an HTTP answer", self, exc)
            return
        except Exception:
            logger.exception("%s: fn_input failed; waiting for an HTTP answer", self)
            return
        with contextlib.suppress(asyncio.InvalidStateError):
            answered.set_result(str(answer))

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/tasks")
        async def waiting() -> list[HumanRequest]:
            """The requests waiting for a person."""
            return self.pending()

        @app.post("/tasks/{request_id}/handle")
        async def handle(request_id: str, response: HumanResponse) -> dict[str, Any]:
            """Answer a waiting request."""
            try:
                self.answer(request_id, response)
            except KeyError:
                raise HTTPException(
                    status_code=404, detail=f"no request {request_id!r} is waiting"
                ) from None
            return {"id_": request_id, "status": "answered"}

    def __repr__(self) -> str:
        return f"<HumanService {self.service_name!r}>"
