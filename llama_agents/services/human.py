"""`HumanService`: a step (or a tool call) that waits for a person.

A request is answered by whichever comes first: `fn_input` (any async function; the default
asks on the console: one reader per process, each prompt labelled with its task, see
human_console.py), an answer posted over HTTP (`POST /tasks/{id}/handle`, what the monitor
sends), or the timeout, which answers with `timeout_answer` (or fails the step when that is
None). Whatever loses is withdrawn: a console prompt leaves the screen.
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
from llama_agents.messages import HumanResponse, TaskDefinition, TaskResult
from llama_agents.messages.envelope import utc_now
from llama_agents.services.base import BaseService, failed_result
from llama_agents.services.human_console import Console, console_input

logger = logging.getLogger("llama_agents.services")

HumanInputFn = Callable[[str], Awaitable[str]]

#: How long a finished request waits for its `fn_input` to be withdrawn (cancelled).
WITHDRAW_TIMEOUT = 5.0

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
        timeout: seconds to wait for an answer (None: forever).
        timeout_answer: the answer given when nobody answered in time; None fails the step.
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
    ) -> None:
        if "{input_str}" not in human_input_prompt:
            raise ConfigurationError("human_input_prompt must contain {input_str}")
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout}")
        super().__init__(
            message_queue,
            service_name,
            description,
            prompt=prompt,
            host=host,
            port=port,
            max_concurrent_tasks=max_concurrent_tasks,
        )
        self.fn_input = fn_input or console_input
        self.human_input_prompt = human_input_prompt
        self.timeout = timeout
        self.timeout_answer = timeout_answer
        self._waiting: dict[str, tuple[HumanRequest, asyncio.Future[str]]] = {}
        self._changed = asyncio.Condition()

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

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        request = HumanRequest(
            task_id=task.task_id,
            step_id=task.step_id,
            input=task.input,
            prompt=self.human_input_prompt.format(input_str=task.input),
        )
        answered: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        async with self._changed:
            self._waiting[request.id_] = (request, answered)
            self._changed.notify_all()
        asking = asyncio.create_task(self._ask(request, answered))
        try:
            async with asyncio.timeout(self.timeout):
                answer = await answered
        except TimeoutError:
            if self.timeout_answer is None:
                return failed_result(task, f"no person answered within {self.timeout}s")
            answer = self.timeout_answer
        finally:
            self._waiting.pop(request.id_, None)
            # Withdrawn before returning: the console must not take a line for this request.
            asking.cancel()
            await asyncio.wait({asking}, timeout=WITHDRAW_TIMEOUT)
        return TaskResult(task_id=task.task_id, step_id=task.step_id, result=answer)

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
