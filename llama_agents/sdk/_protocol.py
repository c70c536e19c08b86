"""The control plane's HTTP API as data: what each call sends and how its answer is read.

Both clients send these `Call`s through their own httpx client (sync or async), so the
mapping between the API and Python, status codes included, is written once: here, in
`_task_events` (a task's events), `_sessions` (sessions) and `_plans` (what takes several
calls: paging, waiting, following a stream).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from llama_agents.errors import (
    ConfigurationError,
    ConfigurationTypeError,
    ControlPlaneError,
    ControlPlaneUnavailableError,
    LlamaAgentsError,
    RequestTooLargeError,
    ServiceNotFoundError,
    SessionNotFoundError,
    TaskExistsError,
    TaskNotFoundError,
    UnauthorizedError,
)
from llama_agents.messages import ServiceDefinition, TaskResult
from llama_agents.messages.records import ServiceInfo, TaskRecord, TaskSummary

from ._errors import ControlPlaneResponseError, response_detail
from ._sse import EVENT_STREAM_HEADERS

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: Makes the exception a status code means, from the server's explanation (`detail`).
ErrorFactory = Callable[[str], LlamaAgentsError]


def segment(value: str, what: str) -> str:
    """One path segment, quoted; ids the API cannot route are refused before sending."""
    identifier(value, what)
    return quote(value, safe="")


def identifier(value: object, what: str) -> str:
    """An id the API can take: a non-empty string without '/'."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{what} must be a non-empty string, not {value!r}")
    if "/" in value:
        raise ConfigurationError(f"{what} {value!r} cannot contain '/'")
    return value


def json_object(value: object, what: str) -> dict[str, Any]:
    """A JSON object (a dict of JSON values) or a clear error, before anything is sent."""
    if not isinstance(value, dict):
        raise ConfigurationTypeError(f"{what} must be a dict (a JSON object), not {value!r}")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationTypeError(f"{what} is not JSON: {exc}") from None
    return value


def _is_success(status: int) -> bool:
    return 200 <= status < 300


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its answer.

    `read` sees only responses `accepts`; an error status listed in `errors` becomes that
    exception; the server may hold the request `hold` seconds (a long-poll) before it answers.
    """

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    errors: Mapping[int, ErrorFactory] = field(default_factory=dict)
    accepts: Callable[[int], bool] = field(default=_is_success)
    hold: float = 0.0

    def interpret(self, response: httpx.Response) -> T:
        """The call's value, or the library exception its status code means."""
        status = response.status_code
        if not self.accepts(status):
            raise error_for(response, self.errors)
        try:
            return self.read(response)
        except (ValueError, KeyError, ValidationError, ControlPlaneError) as exc:
            raise ControlPlaneError(
                f"unexpected answer to {self.method} {self.path} ({status}): {exc}"
            ) from exc


def error_for(
    response: httpx.Response, errors: Mapping[int, ErrorFactory] | None = None
) -> LlamaAgentsError:
    """The exception for an error status."""
    status, detail = response.status_code, response_detail(response)
    if status == 401:
        return UnauthorizedError(f"the control plane refused the API key: {detail}")
    if errors and status in errors:
        return errors[status](detail)
    if status in (502, 503, 504):
        # Down for a moment (its database restarting, a proxy without a backend): retryable.
        return ControlPlaneUnavailableError(
            f"the control plane is unavailable ({status}): {detail}"
        )
    if status == 413:
        limit = re.search(r"([\d,]+) bytes", detail)
        if limit is not None:
            return RequestTooLargeError(int(limit.group(1).replace(",", "")))
    return ControlPlaneResponseError(status, detail)


def task_missing(task_id: str) -> dict[int, ErrorFactory]:
    return {404: lambda _: TaskNotFoundError(task_id)}


def model(kind: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: kind.model_validate_json(response.content)


def _models(kind: type[M]) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[kind])  # type: ignore[valid-type]
    return lambda response: list(adapter.validate_json(response.content))


def _dict(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ControlPlaneError(f"expected a JSON object, got {type(body).__name__}")
    return body


# -- tasks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTask:
    """A task to submit: its `POST /tasks` body, checked, and what a 404 or 409 means."""

    body: dict[str, Any]
    errors: Mapping[int, ErrorFactory]


def new_task(
    input: str,
    task_id: str | None = None,
    result_key: str | None = None,
    *,
    service: str | None = None,
    start_event: dict[str, Any] | None = None,
    session_id: str | None = None,
    publish_result: bool = True,
) -> NewTask:
    if not isinstance(input, str) or not input.strip():
        raise ConfigurationError("a task needs a non-empty input string")
    body: dict[str, Any] = {"input": input}
    for name, value in (("task_id", task_id), ("service", service), ("session_id", session_id)):
        if value is not None:
            body[name] = identifier(value, name)
    if not isinstance(publish_result, bool):
        raise ConfigurationError(f"publish_result is True or False, not {publish_result!r}")
    if not publish_result:
        if result_key is not None:
            raise ConfigurationError(
                "result_key says where the result message goes: not with publish_result=False"
            )
        body["result_key"] = None  # no result message: it is read from the task
    elif result_key is not None:
        body["result_key"] = identifier(result_key, "result_key")
    if start_event is not None:
        body["start_event"] = json_object(start_event, "start_event")

    def unknown(detail: str) -> LlamaAgentsError:
        # One 404 for two names: the server's message says which (the same error class's).
        if session_id is not None and detail == str(SessionNotFoundError(session_id)):
            return SessionNotFoundError(session_id)
        if service is not None and detail == str(ServiceNotFoundError(service)):
            return ServiceNotFoundError(service)
        return ControlPlaneResponseError(404, detail)

    return NewTask(body, {404: unknown, 409: TaskExistsError})


def create_task(task: NewTask) -> Call[str]:
    """`POST /tasks`: the new task's id."""
    return Call(
        "POST",
        "/tasks",
        lambda r: str(_dict(r)["task_id"]),
        json=task.body,
        errors=task.errors,
    )


def get_task(task_id: str) -> Call[TaskRecord]:
    path = f"/tasks/{segment(task_id, 'task_id')}"
    return Call("GET", path, model(TaskRecord), errors=task_missing(task_id))


def get_task_result(task_id: str, wait: float = 0.0) -> Call[TaskResult | None]:
    """200 carries the result of a finished task; 202 says it is still running."""

    def read(response: httpx.Response) -> TaskResult | None:
        if response.status_code == 202:
            return None
        return TaskResult.model_validate_json(response.content)

    return Call(
        "GET",
        f"/tasks/{segment(task_id, 'task_id')}/result",
        read,
        params={"wait": round(wait, 3)} if wait > 0 else None,
        errors=task_missing(task_id),
        accepts=lambda status: status in (200, 202),
        hold=wait,
    )


def cancel_task(task_id: str) -> Call[TaskSummary]:
    path = f"/tasks/{segment(task_id, 'task_id')}/cancel"
    return Call("POST", path, model(TaskSummary), errors=task_missing(task_id))


# -- services ---------------------------------------------------------------------------


def list_services() -> Call[list[ServiceInfo]]:
    return Call("GET", "/services", _models(ServiceInfo))


def get_service(name: str) -> Call[ServiceInfo]:
    path = f"/services/{segment(name, 'service name')}"
    return Call("GET", path, model(ServiceInfo), errors={404: lambda _: ServiceNotFoundError(name)})


def register_service(definition: ServiceDefinition) -> Call[ServiceDefinition]:
    if not isinstance(definition, ServiceDefinition):
        raise ConfigurationError("register_service takes a ServiceDefinition")
    return Call(
        "POST",
        "/services/register",
        model(ServiceDefinition),
        json=definition.model_dump(mode="json"),
    )


def deregister_service(name: str) -> Call[None]:
    segment(name, "service name")
    return Call(
        "POST",
        "/services/deregister",
        lambda _: None,
        json={"service_name": name},
        errors={404: lambda _: ServiceNotFoundError(name)},
    )


# -- the control plane itself -----------------------------------------------------------


def status() -> Call[dict[str, Any]]:
    return Call("GET", "/", _dict)


def health() -> Call[bool]:
    """`/health` answers 503 while the control plane's broker is down: that is a False."""
    return Call("GET", "/health", lambda r: r.status_code == 200, accepts=lambda s: s in (200, 503))


def events() -> Call[None]:
    """The change stream's request; its body is read line by line (see `_sse`)."""
    return Call("GET", "/events", lambda _: None, headers=EVENT_STREAM_HEADERS)
