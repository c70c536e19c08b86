"""The control plane's HTTP API (FastAPI). A caller's mistake is a 4xx, never a 500.

Every route but `/health` needs the system's API key when one is set (the API's own
documentation included). Bodies above `max_request_bytes` are refused with 413 before
they are read.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from llama_agents import tracing
from llama_agents._auth import require_api_key
from llama_agents.control_plane.a2a_server import add_a2a_routes
from llama_agents.control_plane.body_limit import limit_request_bodies
from llama_agents.control_plane.dead_letter_routes import dead_letter_router
from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.control_plane.mcp_server import McpEndpoint
from llama_agents.control_plane.models import NewTask, ServiceName
from llama_agents.control_plane.streams import (
    EventStreamResponse,
    change_events,
    parse_last_event_id,
    task_events,
)
from llama_agents.control_plane.workflow_api import workflow_api_router, workflow_health_router
from llama_agents.errors import (
    ConfigurationError,
    EventRejectedError,
    NonRetryableMessageError,
    NotStartedError,
    ServiceNotFoundError,
    SessionExistsError,
    SessionNotFoundError,
    StateStoreUnavailableError,
    TaskExistsError,
    TaskFinishedError,
    TaskNotFoundError,
    UnknownEventTypeError,
    UnknownResultKeyError,
    WorkflowInputError,
)
from llama_agents.messages import QueueMessage, ServiceDefinition, TaskResult
from llama_agents.messages.records import (
    MAX_WAIT_SECONDS,
    EventSent,
    ServiceInfo,
    SessionInfo,
    TaskCreated,
    TaskNotFinished,
    TaskRecord,
    TaskStatus,
    TaskSummary,
)
from llama_agents.metrics import MetricSet, add_metrics_route
from llama_agents.metrics.http import open_paths

#: The most tasks one `GET /tasks` page holds.
MAX_PAGE = 1000


class SendEvent(BaseModel):
    """`POST /tasks/{id}/events`: an event for the task's run, by its type name."""

    type: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)
    step: str | None = None


class NewSession(BaseModel):
    """`POST /sessions`: optionally, the id to give the session."""

    session_id: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^/\s]+$")


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        model.model_dump_json(), status_code=status, media_type="application/json", headers=headers
    )


_ERROR_STATUS: dict[type[Exception], int] = {
    TaskNotFoundError: 404,
    ServiceNotFoundError: 404,
    SessionNotFoundError: 404,
    TaskExistsError: 409,
    SessionExistsError: 409,
    TaskFinishedError: 409,
    UnknownEventTypeError: 400,
    EventRejectedError: 422,
    WorkflowInputError: 422,
    UnknownResultKeyError: 422,
    NonRetryableMessageError: 422,
    StateStoreUnavailableError: 503,
}


def create_app(control_plane: ControlPlaneFace) -> FastAPI:
    """The control plane's API; `/health` is open (for orchestrators' probes)."""
    mcp = McpEndpoint(control_plane)  # `/mcp`: the mesh as an MCP server (mcp_server.py)
    app = FastAPI(
        title="llama-agents control plane",
        lifespan=mcp.lifespan,
        telemetry=tracing.http_telemetry(),
    )
    app.router.routes.append(mcp.route)
    require_api_key(app, control_plane.api_key, also_open=open_paths(control_plane.metrics_open))
    limit_request_bodies(app, control_plane.max_request_bytes)
    api = APIRouter()

    for error, status in _ERROR_STATUS.items():

        def handler(_: Request, exc: Exception, status: int = status) -> JSONResponse:
            return JSONResponse(status_code=status, content={"detail": str(exc)})

        app.add_exception_handler(error, handler)

    @app.get("/health")
    async def health() -> JSONResponse:
        ready = control_plane.is_ready
        # The workflow-server API's shape (its client checks `status`), plus ours.
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "healthy" if ready else "unhealthy", "broker_connected": ready},
        )

    @api.get("/")
    async def home() -> dict[str, Any]:
        return await control_plane.status()

    # -- services ---------------------------------------------------------------------

    @api.post("/services/register")
    async def register_service(definition: ServiceDefinition) -> ServiceDefinition:
        await control_plane.manager.registry.register(definition)
        return definition

    @api.post("/services/deregister")
    async def deregister_service(body: ServiceName) -> dict[str, str]:
        registry = control_plane.manager.registry
        if body.if_unconsumed and await registry.consumers(body.service_name, fresh=True):
            return {"service_name": body.service_name, "status": "kept"}
        if not await registry.deregister(body.service_name):
            raise ServiceNotFoundError(body.service_name)
        return {"service_name": body.service_name, "status": "deregistered"}

    @api.get("/services")
    async def list_services() -> list[ServiceInfo]:
        await control_plane.manager.registry.refresh()
        return await control_plane.manager.registry.infos()

    @api.get("/services/{service_name}")
    async def get_service(service_name: str) -> ServiceInfo:
        registry = control_plane.manager.registry
        definition = await registry.lookup(service_name)
        if definition is None:
            raise ServiceNotFoundError(service_name)
        return await registry.info(definition)

    # -- tasks (the hot routes answer pre-serialised JSON) ---------------------------

    @api.post("/tasks", response_model=TaskCreated)
    async def create_task(task: NewTask) -> Response:
        record = await control_plane.manager.create(task)
        return _json(TaskCreated(task_id=record.task_id, status=record.status))

    @api.post(
        "/tasks/stream",
        status_code=201,
        response_class=StreamingResponse,
        responses={201: {"content": {"text/event-stream": {}, "application/x-ndjson": {}}}},
    )
    async def create_task_streaming(
        task: NewTask, format: str = Query(default="sse", pattern="^(sse|ndjson)$")
    ) -> StreamingResponse:
        """Create a task and stream its events in the same response: one round trip fewer
        than `POST /tasks` then `GET /tasks/{id}/events`, and the same stream (`?format=`).
        The task's id is in `Location` and `x-task-id` (percent-encoded); a dropped stream
        is resumed with `GET /tasks/{id}/events` and `Last-Event-ID`. A task that cannot be
        created gets an error status, as with `POST /tasks`, before any stream starts."""
        record = await control_plane.manager.create(task)
        sse = format == "sse"
        quoted = quote(record.task_id, safe="")  # headers are latin-1; ids need not be
        return EventStreamResponse(
            task_events(control_plane, record.task_id, 0, sse=sse),
            status_code=201,
            media_type="text/event-stream" if sse else "application/x-ndjson",
            headers={
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
                "location": f"/tasks/{quoted}",
                "x-task-id": quoted,
            },
        )

    @api.get("/tasks", response_model=list[TaskSummary])
    async def list_tasks(
        limit: int = Query(default=100, ge=1, le=MAX_PAGE),
        cursor: str | None = Query(default=None, max_length=500),
        status: list[TaskStatus] | None = Query(default=None),  # noqa: B008
        session_id: str | None = Query(default=None, max_length=200),
    ) -> Response:
        """Newest first, `limit` at a time; the `x-next-cursor` header continues it."""
        try:
            tasks, next_cursor = await control_plane.manager.tasks.page(
                limit=limit,
                cursor=cursor,
                statuses=frozenset(s.value for s in status) if status else None,
                session_id=session_id,
            )
        except ConfigurationError as exc:  # a cursor this control plane did not make
            raise HTTPException(422, str(exc)) from exc
        body = "[" + ",".join(t.model_dump_json() for t in tasks) + "]"
        headers = {"x-next-cursor": next_cursor} if next_cursor else None
        return Response(body, media_type="application/json", headers=headers)

    @api.get("/tasks/{task_id}", response_model=TaskRecord)
    async def get_task(task_id: str) -> Response:
        return _json(await control_plane.manager.read(task_id))

    @api.get(
        "/tasks/{task_id}/result",
        response_model=TaskResult,
        responses={202: {"model": TaskNotFinished, "description": "The task is running."}},
    )
    async def get_result(
        task_id: str, wait: float = Query(default=0.0, ge=0.0, le=MAX_WAIT_SECONDS)
    ) -> Response:
        manager = control_plane.manager
        record = await manager.read(task_id)
        if not record.status.finished and wait > 0:
            try:
                record = await manager.wait(task_id, timeout=wait)
            except TimeoutError:
                record = await manager.read(task_id)
        if record.status.finished and record.result is not None:
            return _json(record.result)
        return _json(TaskNotFinished(task_id=task_id, status=record.status), status=202)

    @api.post("/tasks/{task_id}/cancel")
    async def cancel_task(task_id: str) -> TaskSummary:
        return (await control_plane.manager.cancel(task_id)).summary()

    @api.get("/tasks/{task_id}/events")
    async def stream_task_events(
        task_id: str,
        after: int | None = Query(default=None, ge=0),
        format: str = Query(default="sse", pattern="^(sse|ndjson)$"),
        follow: bool = Query(default=True),
        last_event_id: str | None = Header(default=None),
    ) -> StreamingResponse:
        """The task's events: server-sent events (`id:` is the sequence; resume with
        `Last-Event-ID` or `?after=`), or JSON lines with `?format=ndjson`; with
        `?follow=false`, only those logged when the request came, then the stream ends."""
        if await control_plane.manager.tasks.stored(task_id) is None:
            raise TaskNotFoundError(task_id)  # 404 before the stream starts
        start = after if after is not None else parse_last_event_id(last_event_id) or 0
        sse = format == "sse"
        return EventStreamResponse(
            task_events(control_plane, task_id, start, sse=sse, follow=follow),
            media_type="text/event-stream" if sse else "application/x-ndjson",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    @api.post("/tasks/{task_id}/events", status_code=202)
    async def send_event(task_id: str, event: SendEvent) -> EventSent:
        """Send an event into the task's run (a person's answer, say)."""
        return await control_plane.manager.runs.send_event(
            task_id, event.type, event.data, event.step
        )

    # -- sessions ---------------------------------------------------------------------

    @api.post("/sessions", status_code=201)
    async def create_session(body: NewSession | None = None) -> SessionInfo:
        return await control_plane.manager.sessions.create(body.session_id if body else None)

    @api.get("/sessions/{session_id}")
    async def get_session(session_id: str) -> SessionInfo:
        return await control_plane.manager.sessions.get(session_id)

    @api.delete("/sessions/{session_id}", status_code=204)
    async def delete_session(session_id: str) -> Response:
        await control_plane.manager.sessions.delete(session_id)
        return Response(status_code=204)

    # -- the fabric over HTTP, and the change stream ----------------------------------

    @api.post("/process_message")
    async def process_message(request: Request) -> dict[str, str]:
        message = QueueMessage.decode(await request.body())
        await control_plane.process_message(message)
        return {"id_": message.id_, "status": "processed"}

    @api.get("/events")
    async def events() -> StreamingResponse:
        """Server-sent events: every task and service change, as it happens."""
        return StreamingResponse(
            change_events(control_plane),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def metric_sets() -> list[MetricSet]:
        try:
            manager = control_plane.manager
        except NotStartedError as exc:
            raise HTTPException(503, str(exc)) from exc
        await manager.metrics.refresh(manager.tasks.counts)
        return [manager.metrics, manager.message_queue.metrics]

    add_metrics_route(app, metric_sets)
    app.include_router(api)
    app.include_router(dead_letter_router(control_plane))
    # LlamaIndex's workflow-server API (`llama-agents-client` drives it): at the root, and
    # under `workflow_api_prefix` when one is set.
    workflows = workflow_api_router(control_plane)
    app.include_router(workflows)
    prefix = control_plane.workflow_api_prefix
    if prefix:
        app.include_router(workflows, prefix=prefix)
        app.include_router(workflow_health_router(control_plane), prefix=prefix)
    add_a2a_routes(app, control_plane)  # A2A's JSON-RPC binding and agent card, if installed
    tracing.instrument_app(app)
    return app
