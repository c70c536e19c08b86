"""The control plane's HTTP API as data: what each call sends and how its answer is read.

Both clients send these `Call`s through their own httpx client (sync or async), so the
mapping between the API and Python, status codes included, is written once, here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from llama_agents.errors import (
    ConfigurationError,
    ControlPlaneError,
    ServiceNotFoundError,
    TaskNotFoundError,
    TaskTimeoutError,
    UnauthorizedError,
)
from llama_agents.messages import ServiceDefinition, TaskResult
from llama_agents.messages.records import (
    KEEPALIVE_SECONDS,
    MAX_WAIT_SECONDS,
    TaskRecord,
    TaskSummary,
)

from ._errors import ControlPlaneResponseError, response_detail

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API_KEY_ENV = "LLAMA_AGENTS_API_KEY"
DEFAULT_TIMEOUT = 30.0
#: An event stream that says nothing (not even a keep-alive) for this long is dead.
STREAM_IDLE_SECONDS = 4 * KEEPALIVE_SECONDS


@dataclass(frozen=True)
class ClientConfig:
    """Validated settings shared by both clients."""

    base_url: str
    headers: dict[str, str]
    timeout: float | None

    @classmethod
    def build(cls, url: str, api_key: str | None, timeout: float | None) -> ClientConfig:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be positive seconds or None, not {timeout!r}")
        headers = {"accept": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return cls(base_url=validate_url(url), headers=headers, timeout=timeout)

    def hold_timeout(self, hold: float) -> httpx.Timeout:
        """The request timeout of a call the server may hold `hold` seconds before answering."""
        read = None if self.timeout is None else self.timeout + hold
        return httpx.Timeout(self.timeout, read=read)

    def stream_timeout(self) -> httpx.Timeout:
        """An event stream may be idle between keep-alives; longer silence means it is gone."""
        read = None if self.timeout is None else max(self.timeout, STREAM_IDLE_SECONDS)
        return httpx.Timeout(self.timeout, read=read)


def validate_url(url: str) -> str:
    """The control plane's base URL without a trailing slash; a clear error if unusable."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("the control plane URL is empty (e.g. http://127.0.0.1:8000)")
    url = url.strip().rstrip("/")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"invalid control plane URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"invalid control plane URL {url!r}: expected http(s)://host[:port], "
            "e.g. http://127.0.0.1:8000"
        )
    return url


def _segment(value: str, what: str) -> str:
    """One path segment, quoted; ids the API cannot route are refused before sending."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string")
    if "/" in value:
        raise ConfigurationError(f"{what} {value!r} cannot contain '/'")
    return quote(value, safe="")


def _is_success(status: int) -> bool:
    return 200 <= status < 300


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its answer.

    `read` sees only responses `accepts`; a 404 becomes `not_found()` when given; the server
    may hold the request `hold` seconds (a long-poll) before it answers.
    """

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    json: Any = None
    params: Mapping[str, str | float] | None = None
    not_found: Callable[[], ControlPlaneError] | None = None
    accepts: Callable[[int], bool] = field(default=_is_success)
    hold: float = 0.0

    def interpret(self, response: httpx.Response) -> T:
        """The call's value, or the library exception its status code means."""
        status = response.status_code
        if not self.accepts(status):
            raise error_for(response, self.not_found)
        try:
            return self.read(response)
        except (ValueError, KeyError, ValidationError, ControlPlaneError) as exc:
            raise ControlPlaneError(
                f"unexpected answer to {self.method} {self.path} ({status}): {exc}"
            ) from exc


def error_for(
    response: httpx.Response, not_found: Callable[[], ControlPlaneError] | None = None
) -> ControlPlaneError:
    """The exception for an error status."""
    if response.status_code == 401:
        return UnauthorizedError(
            f"the control plane refused the API key: {response_detail(response)}"
        )
    if response.status_code == 404 and not_found is not None:
        return not_found()
    return ControlPlaneResponseError(response.status_code, response_detail(response))


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _models(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return lambda response: list(adapter.validate_json(response.content))


def _dict(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ControlPlaneError(f"expected a JSON object, got {type(body).__name__}")
    return body


# -- tasks ------------------------------------------------------------------------------


def create_task(input: str, task_id: str | None, result_key: str | None) -> Call[str]:
    if not isinstance(input, str) or not input.strip():
        raise ConfigurationError("a task needs a non-empty input string")
    body: dict[str, str] = {"input": input}
    if task_id is not None:
        _segment(task_id, "task_id")
        body["task_id"] = task_id
    if result_key is not None:
        body["result_key"] = result_key
    return Call("POST", "/tasks", lambda r: str(_dict(r)["task_id"]), json=body)


def get_task(task_id: str) -> Call[TaskRecord]:
    path = f"/tasks/{_segment(task_id, 'task_id')}"
    return Call("GET", path, _model(TaskRecord), not_found=lambda: TaskNotFoundError(task_id))


def get_task_result(task_id: str, wait: float = 0.0) -> Call[TaskResult | None]:
    """200 carries the result of a finished task; 202 says it is still running."""

    def read(response: httpx.Response) -> TaskResult | None:
        if response.status_code == 202:
            return None
        return TaskResult.model_validate_json(response.content)

    return Call(
        "GET",
        f"/tasks/{_segment(task_id, 'task_id')}/result",
        read,
        params={"wait": round(wait, 3)} if wait > 0 else None,
        not_found=lambda: TaskNotFoundError(task_id),
        accepts=lambda status: status in (200, 202),
        hold=wait,
    )


def list_tasks() -> Call[list[TaskSummary]]:
    return Call("GET", "/tasks", _models(TaskSummary))


def cancel_task(task_id: str) -> Call[TaskSummary]:
    path = f"/tasks/{_segment(task_id, 'task_id')}/cancel"
    return Call("POST", path, _model(TaskSummary), not_found=lambda: TaskNotFoundError(task_id))


class ResultWait:
    """Plans `wait_for_result`: long-polls each holding the time left (at most the server's
    maximum), so the client learns of the result the moment it exists, without polling."""

    def __init__(self, task_id: str, timeout: float | None) -> None:
        if timeout is not None and timeout < 0:
            raise ConfigurationError(f"timeout must be >= 0 seconds or None, not {timeout!r}")
        self.task_id = task_id
        self.timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout

    def next_call(self) -> Call[TaskResult | None]:
        left = MAX_WAIT_SECONDS if self._deadline is None else self._deadline - time.monotonic()
        return get_task_result(self.task_id, wait=max(0.0, min(left, MAX_WAIT_SECONDS)))

    def check(self) -> None:
        """Raise `TaskTimeoutError` once the caller's time is up."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise TaskTimeoutError(
                f"task {self.task_id!r} did not finish within {self.timeout:g} seconds"
            )


# -- services ---------------------------------------------------------------------------


def list_services() -> Call[list[ServiceDefinition]]:
    return Call("GET", "/services", _models(ServiceDefinition))


def get_service(name: str) -> Call[ServiceDefinition]:
    path = f"/services/{_segment(name, 'service name')}"
    return Call(
        "GET", path, _model(ServiceDefinition), not_found=lambda: ServiceNotFoundError(name)
    )


def register_service(definition: ServiceDefinition) -> Call[ServiceDefinition]:
    if not isinstance(definition, ServiceDefinition):
        raise ConfigurationError("register_service takes a ServiceDefinition")
    return Call(
        "POST",
        "/services/register",
        _model(ServiceDefinition),
        json=definition.model_dump(mode="json"),
    )


def deregister_service(name: str) -> Call[None]:
    _segment(name, "service name")
    return Call(
        "POST",
        "/services/deregister",
        lambda _: None,
        json={"service_name": name},
        not_found=lambda: ServiceNotFoundError(name),
    )


# -- the control plane itself -----------------------------------------------------------


def status() -> Call[dict[str, Any]]:
    return Call("GET", "/", _dict)


def health() -> Call[bool]:
    """`/health` answers 503 while the control plane's broker is down: that is a False."""
    return Call("GET", "/health", lambda r: r.status_code == 200, accepts=lambda s: s in (200, 503))


def events() -> Call[None]:
    """The event stream's request; its body is read line by line (see `_sse`)."""
    return Call("GET", "/events", lambda _: None)
