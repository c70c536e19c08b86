"""The mesh as an MCP server: the control plane serves MCP over streamable HTTP at `/mcp`.

Tools: `run_task` (create a task, wait for its answer or its question), `get_task`,
`list_services`, `respond` (a person's answer, then wait like `run_task`). While a tool
waits, each event the task logs goes to the client as an MCP progress notification (when
the client sent a progress token): the task's event log drives them, nothing polls.

Stateless HTTP: each MCP request stands alone (no `Mcp-Session-Id` kept in this process),
so any control-plane replica behind a load balancer answers any request, a restarted control
plane breaks no client, and idle clients hold nothing here. Our tools keep their state where
everything else keeps it, in tasks: a question's task id is what `respond` continues. A
tool's progress notifications still reach its caller, on its request's own event stream.

The route is behind the system's API key like every other (`require_api_key` guards the
whole app). The SDK's session manager runs inside the control plane's lifespan (a mounted
Starlette app's own lifespan would never run); a fresh one each time the app is served.
Without the MCP SDK installed, `/mcp` answers 501 with how to install it.

No `from __future__ import annotations` here: the SDK reads the tools' annotations, and
those of functions made inside `_tools` must be objects, not names to look up.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.control_plane.models import NewTask
from llama_agents.control_plane.streams import log_complete
from llama_agents.errors import LlamaAgentsError, ServiceNotFoundError, TaskTimeoutError
from llama_agents.messages.records import (
    KEEPALIVE_SECONDS,
    MAX_WAIT_SECONDS,
    TaskRecord,
    TaskStatus,
    prompt_text,
)

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

logger = logging.getLogger("llama_agents.control_plane")

INSTALL_HINT = "pip install 'llama-agents[mcp]'"
#: The event a person's answer is (what `tasks respond` and the SDK's `respond` send).
HUMAN_RESPONSE_EVENT = "HumanResponseEvent"
#: Seconds a tool waits for the progress of events already logged to be sent out.
_CATCH_UP_SECONDS = 5.0
_NOTE_CHARS = 200

INSTRUCTIONS = (
    "A llama-agents mesh: agents and workflows running as services. run_task sends a task "
    "(to a named service, or to the orchestrator) and waits for its answer. When the run "
    "asks a person, it returns the task id and the question instead: answer with respond. "
    "get_task reads a task; list_services names the services."
)


class TaskOutcome(BaseModel):
    """Where a task is: its answer, its error, or the question it waits on."""

    task_id: str
    status: TaskStatus
    result: str | None = Field(default=None, description="The answer, once completed.")
    data: dict[str, Any] | None = Field(
        default=None, description="The answer as JSON (a workflow's result), when it has one."
    )
    error: str | None = None
    question: str | None = Field(
        default=None, description="What the run asks, while waiting_for_input: call respond."
    )
    prompt: dict[str, Any] | None = Field(
        default=None, description="The event that asked (its type and fields)."
    )


class ServiceEntry(BaseModel):
    """A registered service."""

    name: str
    description: str
    kind: str
    live: bool | None = Field(default=None, description="Whether anything consumes its queue.")


class McpEndpoint:
    """The ASGI app at `/mcp` and the lifespan that runs the SDK's session manager."""

    def __init__(self, control_plane: ControlPlaneFace) -> None:
        self.control_plane = control_plane
        #: Why `/mcp` cannot be served here (the MCP SDK is missing), once the app started.
        self.missing: str | None = None
        self._manager: StreamableHTTPSessionManager | None = None
        #: The route to add to the app: `/mcp` exactly, every method, this ASGI app.
        self.route = Route("/mcp", endpoint=self, include_in_schema=False)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """The app's lifespan: the session manager runs while the app is served."""
        try:
            from mcp.server.transport_security import TransportSecuritySettings
        except ImportError as exc:
            self.missing = f"this control plane serves MCP once installed: {INSTALL_HINT} ({exc})"
            logger.info("no /mcp: %s", self.missing)
            yield
            return

        server = _tools(self.control_plane)
        # A fresh manager per serving (one can run once). DNS-rebinding protection is off:
        # the control plane is reached under names it cannot know (a container's, a load
        # balancer's), and `/mcp` is guarded by the API key like the routes beside it.
        server.streamable_http_app(
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = server.session_manager
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.missing is not None:
            await JSONResponse({"detail": self.missing}, status_code=501)(scope, receive, send)
        elif self._manager is None:
            detail = "the MCP endpoint is not running (the app's lifespan did not start it)"
            await JSONResponse({"detail": detail}, status_code=503)(scope, receive, send)
        else:
            await self._manager.handle_request(scope, receive, send)


def _tools(control_plane: ControlPlaneFace) -> "MCPServer[Any]":
    """The MCP server and its four tools, over the control plane's face."""
    from mcp.server.mcpserver import Context, MCPServer

    with _logging_left_alone():
        server: MCPServer[Any] = MCPServer("llama-agents", instructions=INSTRUCTIONS)
    waits = _Waits(control_plane)

    @server.tool()
    async def run_task(
        ctx: Context,
        input: str = Field(description="The task, in words."),
        service: str | None = Field(
            default=None, description="The service to run it (none: the orchestrator picks)."
        ),
        session_id: str | None = Field(default=None, description="A session to continue."),
    ) -> TaskOutcome:
        """Run a task on the mesh and wait for its answer; if it asks a person, return the
        task id and the question (answer it with respond). A task still running after five
        minutes is returned as running: read it later with get_task."""
        with _tool_errors():
            record = await control_plane.manager.create(
                NewTask(input=input, service=service, session_id=session_id)
            )
            return await waits.settle(record.task_id, ctx, after=0, asked=None)

    @server.tool()
    async def get_task(task_id: str) -> TaskOutcome:
        """A task's status, and its answer, error or question."""
        with _tool_errors():
            return outcome(await control_plane.manager.read(task_id))

    @server.tool()
    async def list_services() -> list[ServiceEntry]:
        """The services registered on the mesh."""
        with _tool_errors():
            infos = await control_plane.manager.registry.infos()
        return [
            ServiceEntry(
                name=info.service_name, description=info.description, kind=info.kind, live=info.live
            )
            for info in infos
        ]

    @server.tool()
    async def respond(
        ctx: Context,
        task_id: str,
        text: str = Field(description="The person's answer."),
    ) -> TaskOutcome:
        """Answer the question a task waits on, then wait for its answer or next question."""
        with _tool_errors():
            manager = control_plane.manager
            record = await manager.read(task_id)
            after = await manager.log.store.last_sequence(task_id)
            await manager.runs.send_event(task_id, HUMAN_RESPONSE_EVENT, {"response": text})
            return await waits.settle(task_id, ctx, after=after, asked=_question_id(record))

    return server


class _Waits:
    """Waiting for a task to answer or ask, with progress notifications on the way."""

    def __init__(self, control_plane: ControlPlaneFace) -> None:
        self.control_plane = control_plane

    async def settle(
        self, task_id: str, ctx: "Context[Any]", *, after: int, asked: object
    ) -> TaskOutcome:
        """The task once finished or waiting on a question other than `asked`; still running
        after `MAX_WAIT_SECONDS` (call get_task later). A failed or cancelled task is a tool
        error."""
        progress = _Progress(self.control_plane, task_id, after, ctx)
        following = asyncio.create_task(progress.run(), name=f"mcp-progress-{task_id}")
        try:
            record = await self._until(task_id, lambda r: _settled(r, asked))
            await progress.caught_up(await self._last_sequence(task_id), following)
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
        result = outcome(record)
        if record.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            raise _tool_error(f"task {task_id} {record.status.value}: {record.error or ''}")
        return result

    async def _until(self, task_id: str, predicate: Callable[[TaskRecord], bool]) -> TaskRecord:
        manager = self.control_plane.manager
        waiting = asyncio.ensure_future(manager.wait_until(task_id, predicate, MAX_WAIT_SECONDS))
        stopping = asyncio.ensure_future(self.control_plane.stopping.wait())
        try:
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (waiting, stopping):
                pending.cancel()
            await asyncio.gather(waiting, stopping, return_exceptions=True)
        if not waiting.cancelled():
            error = waiting.exception()
            if error is None:
                return waiting.result()
            if not isinstance(error, TaskTimeoutError):
                raise error
        return await manager.read(task_id)  # still running: the caller asks again later

    async def _last_sequence(self, task_id: str) -> int:
        return await self.control_plane.manager.log.store.last_sequence(task_id)


class _Progress:
    """Sends each event the task logs after `after` as a progress notification."""

    def __init__(
        self, control_plane: ControlPlaneFace, task_id: str, after: int, ctx: "Context[Any]"
    ) -> None:
        self.control_plane = control_plane
        self.task_id = task_id
        self.reported = after
        self.ctx = ctx
        self._moved = asyncio.Event()

    async def run(self) -> None:
        async def finished() -> bool:
            return await log_complete(self.control_plane, self.task_id)

        async for rows in self.control_plane.manager.log.follow_batches(
            self.task_id,
            self.reported,
            is_finished=finished,
            heartbeat=KEEPALIVE_SECONDS,
            stopping=self.control_plane.stopping,
        ):
            for row in rows or ():
                # A no-op when the client sent no progress token.
                await self.ctx.report_progress(row.sequence, None, _note(row.body))
            if rows:
                self.reported = rows[-1].sequence
                self._moved.set()

    async def caught_up(self, sequence: int, following: asyncio.Task[None]) -> None:
        """Wait (briefly) until the events up to `sequence` were reported, so they reach the
        client before the tool's result does."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CATCH_UP_SECONDS):
                while True:
                    self._moved.clear()
                    if self.reported >= sequence or following.done():
                        return
                    moved = asyncio.ensure_future(self._moved.wait())
                    try:
                        await asyncio.wait({moved, following}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        moved.cancel()


def outcome(record: TaskRecord) -> TaskOutcome:
    """A task record as a tool's answer."""
    prompt = _prompt(record)
    result = record.result if record.status.finished else None
    return TaskOutcome(
        task_id=record.task_id,
        status=record.status,
        result=result.result if result is not None and record.error is None else None,
        data=(result.data or None) if result is not None else None,
        error=record.error,
        question=(prompt_text(prompt) or "input") if _waiting(record) else None,
        prompt=prompt if _waiting(record) else None,
    )


def _waiting(record: TaskRecord) -> bool:
    return record.status is TaskStatus.WAITING_FOR_INPUT


def _prompt(record: TaskRecord) -> dict[str, Any] | None:
    run = record.run
    return run.prompt if run is not None and run.waiting else None


def _question_id(record: TaskRecord) -> object:
    """Which question a waiting task asks: its prompt event's key (each event has its own),
    else the run update that put it waiting. None when it waits on nothing."""
    if not _waiting(record) or record.run is None:
        return None
    prompt = record.run.prompt
    if prompt is not None and prompt.get("key"):
        return prompt["key"]
    return (record.run.step_id, record.run.last_update)


def _settled(record: TaskRecord, asked: object) -> bool:
    """Finished, or waiting on a question that is not `asked` (the one just answered)."""
    if record.status.finished:
        return True
    return _waiting(record) and (asked is None or _question_id(record) != asked)


def _note(body: dict[str, Any]) -> str:
    """An event as one line for a progress notification: its type and fields."""
    data = body.get("data")
    text = json.dumps(data, ensure_ascii=False, default=str) if data else ""
    if len(text) > _NOTE_CHARS:
        text = text[: _NOTE_CHARS - 1] + "…"
    return f"{body.get('type', 'event')} {text}".rstrip()


@contextlib.contextmanager
def _logging_left_alone() -> Iterator[None]:
    """`MCPServer()` calls `logging.basicConfig` (a rich handler on the root logger) when the
    root logger has none; a library must not set up its host process's logging."""
    root = logging.getLogger()
    placeholder = None if root.handlers else logging.NullHandler()
    if placeholder is not None:
        root.addHandler(placeholder)
    try:
        yield
    finally:
        if placeholder is not None:
            root.removeHandler(placeholder)


def _tool_error(message: str) -> Exception:
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(message)


@contextlib.contextmanager
def _tool_errors() -> Iterator[None]:
    """A refused request (unknown task or service, finished task, bad input) as a tool error
    with the reason, which the SDK returns as an `isError` result."""
    try:
        yield
    except ServiceNotFoundError as exc:
        raise _tool_error(f"{exc} (see list_services)") from exc
    except ValidationError as exc:
        reasons = "; ".join(str(error["msg"]) for error in exc.errors())
        raise _tool_error(f"invalid task: {reasons}") from exc
    except LlamaAgentsError as exc:
        raise _tool_error(str(exc)) from exc
