"""Setting OpenTelemetry up from its own environment variables, once per process.

Nothing here is a setting of ours: the tracer provider reads the sampler
(`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`), the resource reads `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES`, the batch processor `OTEL_BSP_*`, the exporters
`OTEL_EXPORTER_OTLP_*`; `OTEL_TRACES_EXPORTER` names exporters by their entry points
(`opentelemetry_traces_exporter`), as the SDK's own auto-configuration does. `otlp` means the
protocol `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` names, else the OTLP exporter installed
(the `otel` extra installs the HTTP one).

A process that already has a tracer provider (`opentelemetry-instrument`, or the
application's own) keeps it: only the instrumentation is added.
"""

from __future__ import annotations

import logging
import operator
import os
import re
from collections.abc import Callable, MutableMapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

logger = logging.getLogger("llama_agents.tracing")

_GROUP = "opentelemetry_traces_exporter"
_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
#: Paths whose requests make no spans unless OTEL_PYTHON_FASTAPI_EXCLUDED_URLS says otherwise:
#: probes and scrapes would bury the tasks' traces.
_QUIET_PATHS = "/health,/metrics"

_provider: TracerProvider | None = None


def _exporter_names() -> list[str]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "")
    return [name.strip() for name in names.split(",") if name.strip() not in ("", "none")]


def _resolve(name: str) -> str:
    if name != "otlp":
        return name
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if protocol:
        return _BY_PROTOCOL.get(protocol.strip(), "otlp_proto_http")
    installed = {point.name for point in entry_points(group=_GROUP)}
    return "otlp_proto_http" if "otlp_proto_http" in installed else "otlp_proto_grpc"


def _exporters() -> list[SpanExporter]:
    found = {point.name: point for point in entry_points(group=_GROUP)}
    exporters: list[SpanExporter] = []
    for name in _exporter_names():
        point = found.get(_resolve(name))
        if point is None:
            logger.warning("no OpenTelemetry trace exporter named %r is installed", name)
            continue
        exporters.append(point.load()())
    return exporters


def configure() -> None:
    """The tracer provider, its exporters, and the instrumentation (once per process)."""
    global _provider
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        _provider = current  # someone set tracing up already: keep theirs
    else:
        exporters = _exporters()
        # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the resource from
        # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES: the SDK reads them itself.
        provider = TracerProvider(resource=Resource.create())
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _provider = provider
    _instrument_httpx()


def _instrument_httpx() -> None:
    """Client spans for every httpx request (the SDK's, a service's, an LLM client's), with
    the `traceparent` header that lets the server continue the trace."""
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    except ImportError:
        return
    instrumentor: Any = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


#: Requests that only read.
_READS = frozenset({"GET", "HEAD"})
#: A header's name (`map` over the request's headers: no Python frame per header).
_name_of = operator.itemgetter(0)


def untraced_read(scope: MutableMapping[str, Any]) -> bool:
    """A read (GET, HEAD) whose caller sent no trace context. Its span would be a trace of its
    own that no task's trace links to (a long-poll for a result, the monitor's refresh), and
    costs a request its server span (about 40 µs) whether sampled or not. A traced caller's
    reads keep theirs, under its own spans; every write (creating a task, answering a run,
    cancelling) keeps its span, so each task's trace starts at the request that created it."""
    if scope.get("method") not in _READS:
        return False
    return b"traceparent" not in map(_name_of, scope.get("headers") or ())


def excluded_path() -> Callable[[MutableMapping[str, Any]], bool]:
    """Which requests make no server span: untraced reads (`untraced_read`), and the paths
    `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS` (or `OTEL_PYTHON_EXCLUDED_URLS`) lists, comma-separated
    patterns searched in the path, as OpenTelemetry's own instrumentation reads them; by
    default `/health` and `/metrics`."""
    listed = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS"
    )
    patterns = [part.strip() for part in (listed or _QUIET_PATHS).split(",") if part.strip()]
    if not patterns:
        return untraced_read
    pattern = re.compile("|".join(f"(?:{part})" for part in patterns))
    return lambda scope: untraced_read(scope) or pattern.search(scope.get("path", "")) is not None


def shutdown() -> None:
    if _provider is not None:
        _provider.force_flush()
