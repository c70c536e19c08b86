"""OpenTelemetry tracing: one trace per task, across every process and hop.

Configured only by OpenTelemetry's own environment variables (`OTEL_TRACES_EXPORTER`,
`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER(_ARG)`, ...) and
installed with the `otel` extra. This module is the only part the rest of the code imports:
it imports nothing of OpenTelemetry, and while tracing is off (the variable unset or `none`,
or the extra missing) every hook returns a shared no-op, so the hot path pays one function
call and one flag test. The first hook called decides, once per process.

The hooks, each one line where it is used:

- `publishing` / `amqp_headers`: a producer span per publish, its W3C context injected in
  the message's headers (and the AMQP headers);
- `consuming`: a consumer span per delivery, continuing the publisher's context;
- `start_task` / `task_context` / `decision`: a task's trace context, kept in its record,
  so its steps, results handled later and resumed runs join one trace;
- `step`: a service's step (llama-index's own spans, bridged, sit under it);
- `instrument_app`: the HTTP server span of each request to our FastAPI apps (FastAPI's own
  telemetry, `http_telemetry`, stays off).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.telemetry import TelemetryConfig

    from llama_agents.messages import QueueMessage
    from llama_agents.messages.records import TaskRecord

logger = logging.getLogger("llama_agents.tracing")

#: The W3C trace context headers a message carries.
TRACE_HEADERS = ("traceparent", "tracestate")


class Settled(Protocol):
    """Told how a delivery ended (the consumer span records it)."""

    def __call__(self, verdict: str, reason: str | None = None) -> None: ...


def _settled_noop(verdict: str, reason: str | None = None) -> None:
    return None


_OFF: AbstractContextManager[None] = contextlib.nullcontext()
_OFF_CONSUMING: AbstractContextManager[Settled] = contextlib.nullcontext(_settled_noop)

_enabled: bool | None = None
_lock = threading.Lock()
#: `llama_agents.tracing._spans`, once tracing is on (an import statement per hook call
#: would cost more than the hook).
_impl: Any = None
_bridged = False


def _wanted() -> bool:
    """Whether the environment asks for traces (without importing OpenTelemetry)."""
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters in ("", "none"):
        return False
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def enabled() -> bool:
    """True when this process traces; the first call decides and sets OpenTelemetry up."""
    global _enabled
    if _enabled is not None:
        return _enabled
    with _lock:
        if _enabled is None:
            _enabled = _start()
    return _enabled


def _start() -> bool:
    if not _wanted():
        return False
    if importlib.util.find_spec("opentelemetry.sdk") is None:
        logger.warning(
            "OTEL_TRACES_EXPORTER is set but OpenTelemetry is not installed: no traces "
            "(pip install 'llama-agents[otel]')"
        )
        return False
    from llama_agents.tracing import _setup

    try:
        _setup.configure()
    except Exception:
        logger.exception("could not set OpenTelemetry tracing up: no traces")
        return False
    global _impl
    from llama_agents.tracing import _spans

    _impl = _spans
    return True


def _bridge_llama_index() -> None:
    """llama-index's spans into OpenTelemetry, from the first step or decision on."""
    global _bridged
    if not _bridged:
        from llama_agents.tracing import _llama_index

        _llama_index.install()
        _bridged = True


# -- the hooks ------------------------------------------------------------------------


def publishing(
    message: QueueMessage, system: str, destination: str | None = None
) -> AbstractContextManager[None]:
    """A producer span around one publish (on `system`, to `destination`: an exchange, or
    the message's type); injects its context in `message.headers`."""
    if not (_enabled or enabled()):  # the flag first: no call on the hot path
        return _OFF
    span: AbstractContextManager[None] = _impl.publishing(message, system, destination)
    return span


def amqp_headers(message: QueueMessage) -> dict[str, str]:
    """The trace context headers `publishing` put on `message`, for the transport's own
    headers (empty while tracing is off)."""
    headers = message.headers
    if not headers:
        return {}
    return {name: headers[name] for name in TRACE_HEADERS if name in headers}


def consuming(
    message: QueueMessage,
    consumer_type: str,
    *,
    system: str,
    destination: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> AbstractContextManager[Settled]:
    """A consumer span around handling one delivery, continuing the publisher's context
    (from the transport's `headers`, else the message's own)."""
    if not (_enabled or enabled()):
        return _OFF_CONSUMING
    span: AbstractContextManager[Settled] = _impl.consuming(
        message, consumer_type, system=system, destination=destination, headers=headers
    )
    return span


def start_task(record: TaskRecord) -> None:
    """Give a new task its trace: a span under the current one (the HTTP request that
    created it), or a new trace; its context is kept in `record.trace_context`."""
    if _enabled or enabled():
        _impl.start_task(record)


def task_context(carrier: Mapping[str, str] | None) -> AbstractContextManager[None]:
    """Work for a task runs in its trace: the stored context, unless the current span is
    already in that trace (a result being handled)."""
    if not carrier or not (_enabled or enabled()):
        return _OFF
    context: AbstractContextManager[None] = _impl.task_context(carrier)
    return context


def decision(record: TaskRecord, orchestrator: str) -> AbstractContextManager[None]:
    """A span around an orchestrator's decision for a task (its LLM call sits under it)."""
    if not (_enabled or enabled()):
        return _OFF
    if not _bridged:
        _bridge_llama_index()
    span: AbstractContextManager[None] = _impl.decision(record, orchestrator)
    return span


def step(service: str, message: QueueMessage) -> AbstractContextManager[None]:
    """A span around a service's step (the agent's LLM and tool calls sit under it)."""
    if not (_enabled or enabled()):
        return _OFF
    if not _bridged:
        _bridge_llama_index()
    span: AbstractContextManager[None] = _impl.step(service, message)
    return span


def http_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry settings for our apps (`FastAPI(telemetry=...)`): all off.

    Its spans, metrics and logs would cost every request, sampled or not, a good part of a
    task's tracing cost (`_http`'s docstring); the server span is `instrument_app`'s."""
    return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def instrument_app(app: FastAPI) -> None:
    """While tracing is on, one server span per request to `app` (`_http.ServerSpans`),
    continuing a caller's `traceparent`; none for `/health` and `/metrics`, nor for a read
    whose caller sent no trace context (`_setup.untraced_read`). Call it once the app's
    other middleware is added: its span then covers theirs (a refused API key included)."""
    if not enabled():
        return
    from llama_agents.tracing import _http, _setup

    app.add_middleware(_http.ServerSpans, excluded=_setup.excluded_path())


def shutdown() -> None:
    """Export the spans still buffered (a process on its way out)."""
    if _enabled:
        from llama_agents.tracing import _setup

        _setup.shutdown()


__all__ = [
    "TRACE_HEADERS",
    "Settled",
    "amqp_headers",
    "consuming",
    "decision",
    "enabled",
    "http_telemetry",
    "instrument_app",
    "publishing",
    "shutdown",
    "start_task",
    "step",
    "task_context",
]
