"""The workflow-server routes, with the status codes and bodies of `llama-agents-server` 0.8.

Bodies are read leniently, as that server reads them (a caller's mistake is a 400 with a
`detail`, never a 500 or a 422), and every answer is a JSON shape its client validates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.control_plane.workflow_api.envelopes import (
    WorkflowShape,
    parse_sent_event,
    parse_start_event,
)
from llama_agents.control_plane.workflow_api.graph import workflow_graph
from llama_agents.control_plane.workflow_api.handlers import (
    Handlers,
    handler_data,
    is_workflow,
    workflow_shape,
)
from llama_agents.control_plane.workflow_api.models import HandlerData, HandlersList
from llama_agents.control_plane.workflow_api.streams import from_wire, run_events
from llama_agents.errors import (
    EventRejectedError,
    HandlerRunningError,
    TaskFinishedError,
    TaskNotFoundError,
    WorkflowInputError,
)
from llama_agents.messages import ServiceDefinition
from llama_agents.messages.records import TaskRecord

_HANDLER_ID = re.compile(r"^[^/\s]{1,200}$")
_STATUSES = frozenset({"running", "completed", "failed", "cancelled"})
_STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _flag(request: Request, name: str, default: str) -> bool:
    return request.query_params.get(name, default).lower() == "true"


def _list_param(request: Request, name: str) -> set[str] | None:
    values = [v.strip() for v in request.query_params.getlist(name) if v.strip()]
    return set(values) or None


def _handler_status(data: HandlerData) -> int:
    return 202 if data.status == "running" else 200 if data.status == "completed" else 500


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"Invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "Invalid JSON body: expected an object")
    return body


def workflow_health_router(control_plane: ControlPlaneFace) -> APIRouter:
    """The server's `/health`, for a prefix (at the root, the control plane's own `/health`
    answers in the same shape, and is the only route open without the API key)."""
    api = APIRouter(tags=["workflow server API"])

    @api.get("/health")
    async def health_check() -> JSONResponse:
        ready = control_plane.is_ready
        return JSONResponse(
            {"status": "healthy" if ready else "unhealthy"}, status_code=200 if ready else 503
        )

    return api


def workflow_api_router(control_plane: ControlPlaneFace) -> APIRouter:
    """The workflow-server API over `control_plane`'s tasks (all of it but `/health`)."""
    api = APIRouter(tags=["workflow server API"])

    made: list[Handlers] = []

    def handlers() -> Handlers:
        """One `Handlers` per task manager (its locks are shared by all requests)."""
        manager = control_plane.manager
        if not made or made[0].manager is not manager:
            made[:] = [Handlers(manager)]
        return made[0]

    async def workflow(name: str) -> tuple[ServiceDefinition, WorkflowShape]:
        definition = await control_plane.manager.registry.lookup(name)
        shape = workflow_shape(definition)
        if definition is None or shape is None:
            raise HTTPException(404, "Workflow not found")
        return definition, shape

    def shape_of(record: TaskRecord) -> WorkflowShape | None:
        return workflow_shape(control_plane.manager.registry.get(record.service or ""))

    async def current(handler_id: str) -> TaskRecord:
        record = await handlers().current(handler_id)
        if record is None:
            raise HTTPException(404, "Handler not found")
        return record

    # -- workflows --------------------------------------------------------------------

    @api.get("/workflows")
    async def list_workflows() -> dict[str, list[str]]:
        await control_plane.manager.registry.refresh()
        services = control_plane.manager.registry.all()
        return {"workflows": [d.service_name for d in services if is_workflow(d)]}

    @api.get("/workflows/{name}/schema")
    async def workflow_schema(name: str) -> dict[str, Any]:
        _, shape = await workflow(name)
        return {"start": shape.start.schema, "stop": shape.stop.schema}

    @api.get("/workflows/{name}/events")
    async def workflow_events(name: str) -> dict[str, Any]:
        _, shape = await workflow(name)
        return {"events": [event.schema for event in shape.events.values()]}

    @api.get("/workflows/{name}/representation")
    async def workflow_representation(name: str) -> dict[str, Any]:
        definition, shape = await workflow(name)
        return {"graph": workflow_graph(shape, definition.workflow or {}, definition.description)}

    async def start(name: str, request: Request) -> TaskRecord:
        _, shape = await workflow(name)
        body = await _json_body(request)
        if body.get("context"):
            raise HTTPException(
                400,
                "Context API is not supported: pass handler_id to continue a handler's state",
            )
        handler_id = body.get("handler_id")
        if handler_id is not None and (
            not isinstance(handler_id, str) or not _HANDLER_ID.match(handler_id)
        ):
            raise HTTPException(400, "handler_id must be 1-200 characters, no '/' or spaces")
        try:
            fields = parse_start_event(body.get("start_event", body.get("kwargs", {})), shape)
            return await handlers().start(name, handler_id or None, fields)
        except HandlerRunningError as exc:
            raise HTTPException(409, str(exc)) from None
        except (WorkflowInputError, EventRejectedError) as exc:
            raise HTTPException(400, f"Validation error for 'start_event': {exc}") from None

    @api.post("/workflows/{name}/run")
    async def run_workflow(name: str, request: Request) -> JSONResponse:
        """Start a run and answer when it ended: 200 completed, 500 failed or cancelled."""
        record = await start(name, request)
        manager = control_plane.manager
        ended = asyncio.ensure_future(manager.wait(record.task_id, None))
        stopping = asyncio.ensure_future(control_plane.stopping.wait())
        try:
            await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (ended, stopping):
                waiter.cancel()
        if not ended.done() or ended.cancelled():
            raise HTTPException(503, "the control plane is stopping; the run goes on")
        data = handler_data(ended.result(), shape_of(record))
        return JSONResponse(data.model_dump(mode="json"), status_code=_handler_status(data))

    @api.post("/workflows/{name}/run-nowait")
    async def run_workflow_nowait(name: str, request: Request) -> JSONResponse:
        record = await start(name, request)
        return JSONResponse(handler_data(record, shape_of(record)).model_dump(mode="json"))

    # -- handlers ---------------------------------------------------------------------

    @api.get("/handlers")
    async def get_handlers(request: Request) -> JSONResponse:
        statuses = _list_param(request, "status")
        if statuses is not None:
            statuses &= _STATUSES
        found = await handlers().list(statuses, _list_param(request, "workflow_name"))
        return JSONResponse(HandlersList(handlers=found).model_dump(mode="json"))

    @api.get("/handlers/{handler_id}")
    async def get_handler(handler_id: str) -> JSONResponse:
        record = await current(handler_id)
        data = handler_data(record, shape_of(record))
        return JSONResponse(data.model_dump(mode="json"), status_code=_handler_status(data))

    @api.get("/results/{handler_id}", deprecated=True)
    async def get_result(handler_id: str) -> JSONResponse:
        """Deprecated there too: the handler, with its result's value unwrapped."""
        record = await current(handler_id)
        data = handler_data(record, shape_of(record))
        body = data.model_dump(mode="json")
        result = data.result
        if result is None:
            body["result"] = None
        elif result.qualified_name == "workflows.events.StopEvent":
            body["result"] = result.value.get("result")
        else:
            body["result"] = result.value
        return JSONResponse(body, status_code=_handler_status(data))

    @api.post("/handlers/{handler_id}/cancel")
    async def cancel_handler(handler_id: str, request: Request) -> dict[str, str]:
        purge = _flag(request, "purge", "false")
        record = await current(handler_id)
        if record.status.finished and not purge:
            raise HTTPException(404, "Handler not found")
        if not record.status.finished:
            await control_plane.manager.cancel(record.task_id)
        if purge:
            await handlers().purge(handler_id)
            return {"status": "deleted"}
        return {"status": "cancelled"}

    # -- events -----------------------------------------------------------------------

    @api.get("/events/{handler_id}")
    async def stream_events(handler_id: str, request: Request) -> Response:
        sse = _flag(request, "sse", "true")
        given = request.query_params.get("after_sequence", "now")
        after_sequence: int | None = None
        if given.lower() != "now":
            try:
                after_sequence = int(given)
            except ValueError:
                raise HTTPException(400, f"Invalid after_sequence: '{given}'") from None
        last_event_id = request.headers.get("last-event-id")
        if sse and last_event_id is not None:
            with contextlib.suppress(ValueError):  # not a number: ignored, as there
                after_sequence = int(last_event_id)
        record = await current(handler_id)
        last = await control_plane.manager.log.store.last_sequence(record.task_id)
        after = last if after_sequence is None else from_wire(after_sequence)
        if record.status.finished and after >= last:
            return Response(status_code=204)  # finished, and everything was read
        # `include_internal`: our runs log no internal dispatch events, so it changes nothing.
        return StreamingResponse(
            run_events(
                control_plane,
                record.task_id,
                after,
                shape_of(record),
                sse=sse,
                include_qualified_name=_flag(request, "include_qualified_name", "true"),
            ),
            media_type="text/event-stream" if sse else "application/x-ndjson",
            headers=_STREAM_HEADERS,
        )

    @api.post("/events/{handler_id}")
    async def send_event(handler_id: str, request: Request) -> dict[str, str]:
        body = await _json_body(request)
        event = body.get("event")
        step = body.get("step")
        if not event:
            raise HTTPException(400, "Event data is required")
        if step is not None and not isinstance(step, str):
            raise HTTPException(400, "step must be a string")
        record = await current(handler_id)
        if record.status.finished:
            raise HTTPException(409, "Workflow already completed")
        shape = shape_of(record)
        if shape is None:
            raise HTTPException(400, f"{record.service!r} is not a workflow: it takes no events")
        try:
            type_name, fields = parse_sent_event(event, shape)
            await control_plane.manager.runs.send_event(record.task_id, type_name, fields, step)
        except EventRejectedError as exc:
            raise HTTPException(400, str(exc)) from None
        except TaskFinishedError:
            raise HTTPException(409, "Workflow already completed") from None
        except TaskNotFoundError:
            raise HTTPException(404, "Handler not found") from None
        return {"status": "sent"}

    return api
