"""The control plane's HTTP API (FastAPI). A caller's mistake is a 4xx, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from llama_agents._auth import api_key_guard
from llama_agents.control_plane.models import (
    NewTask,
    ServiceName,
    TaskCreated,
    TaskNotFinished,
    TaskRecord,
    TaskSummary,
)
from llama_agents.errors import (
    NonRetryableMessageError,
    ServiceNotFoundError,
    TaskExistsError,
    TaskNotFoundError,
)
from llama_agents.messages import QueueMessage, ServiceDefinition, TaskResult

if TYPE_CHECKING:
    from llama_agents.control_plane.server import ControlPlaneServer

#: The longest a `GET /tasks/{id}/result?wait=` long-poll may hold a request.
MAX_WAIT_SECONDS = 300.0


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _error(status: int, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": str(exc)})


def create_app(control_plane: ControlPlaneServer) -> FastAPI:
    """The app: `/health` is open (for orchestrators' probes), every other route needs the
    API key when one is configured."""
    app = FastAPI(title="llama-agents control plane")
    api = APIRouter(dependencies=[Depends(api_key_guard(control_plane.api_key))])

    @app.exception_handler(TaskNotFoundError)
    async def _task_not_found(_: Request, exc: TaskNotFoundError) -> JSONResponse:
        return _error(404, exc)

    @app.exception_handler(ServiceNotFoundError)
    async def _service_not_found(_: Request, exc: ServiceNotFoundError) -> JSONResponse:
        return _error(404, exc)

    @app.exception_handler(TaskExistsError)
    async def _task_exists(_: Request, exc: TaskExistsError) -> JSONResponse:
        return _error(409, exc)

    @app.exception_handler(NonRetryableMessageError)
    async def _bad_message(_: Request, exc: NonRetryableMessageError) -> JSONResponse:
        return _error(422, exc)

    @api.get("/")
    async def home() -> dict[str, Any]:
        return await control_plane.status()

    @app.get("/health")
    async def health() -> JSONResponse:
        ready = control_plane.is_ready
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ok" if ready else "unavailable", "broker_connected": ready},
        )

    @api.post("/services/register")
    async def register_service(definition: ServiceDefinition) -> ServiceDefinition:
        await control_plane.register_service(definition)
        return definition

    @api.post("/services/deregister")
    async def deregister_service(body: ServiceName) -> dict[str, str]:
        await control_plane.deregister_service(body.service_name)
        return {"service_name": body.service_name, "status": "deregistered"}

    @api.get("/services")
    async def list_services() -> list[ServiceDefinition]:
        return await control_plane.list_services()

    @api.get("/services/{service_name}")
    async def get_service(service_name: str) -> ServiceDefinition:
        return await control_plane.get_service(service_name)

    # The task routes are the hot path: they answer with pre-serialised JSON, skipping
    # FastAPI's second validation of the response model.

    @api.post("/tasks", response_model=TaskCreated)
    async def create_task(task: NewTask) -> Response:
        record = await control_plane.create_task(task)
        return _json(TaskCreated(task_id=record.task_id, status=record.status))

    @api.get("/tasks")
    async def list_tasks() -> list[TaskSummary]:
        return [record.summary() for record in await control_plane.list_tasks()]

    @api.get("/tasks/{task_id}", response_model=TaskRecord)
    async def get_task(task_id: str) -> Response:
        return _json(await control_plane.manager.get(task_id))

    @api.get(
        "/tasks/{task_id}/result",
        response_model=TaskResult,
        responses={202: {"model": TaskNotFinished, "description": "The task is running."}},
    )
    async def get_result(
        task_id: str, wait: float = Query(default=0.0, ge=0.0, le=MAX_WAIT_SECONDS)
    ) -> Response:
        record = await control_plane.manager.get(task_id)
        if not record.status.finished and wait > 0:
            try:
                record = await control_plane.manager.wait(task_id, timeout=wait)
            except TimeoutError:
                record = await control_plane.manager.get(task_id)
        if record.status.finished and record.result is not None:
            return _json(record.result)
        return _json(TaskNotFinished(task_id=task_id, status=record.status), status=202)

    @api.post("/tasks/{task_id}/cancel")
    async def cancel_task(task_id: str) -> TaskSummary:
        return (await control_plane.cancel_task(task_id)).summary()

    @api.post("/process_message")
    async def process_message(request: Request) -> dict[str, str]:
        message = QueueMessage.decode(await request.body())
        await control_plane.process_message(message)
        return {"id_": message.id_, "status": "processed"}

    @api.get("/events")
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: every task and service change, as it happens."""
        return StreamingResponse(
            _event_stream(control_plane, request),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    app.include_router(api)
    return app


#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_SECONDS = 15.0


async def _event_stream(control_plane: ControlPlaneServer, request: Request) -> AsyncIterator[str]:
    async with control_plane.manager.events.subscribe() as events:
        yield ": connected\n\n"
        while not await request.is_disconnected():
            try:
                event = await asyncio.wait_for(events.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if event is None:
                return  # the control plane is stopping: end the stream so it can
            yield f"event: {event.kind}\ndata: {event.model_dump_json()}\n\n"
