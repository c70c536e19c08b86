"""An OTLP/HTTP trace collector in the test process: it decodes what exporters send.

`POST /v1/traces` takes an `ExportTraceServiceRequest` (protobuf, as opentelemetry-proto
defines it) and keeps every span it holds, flattened, with the `service.name` of the process
that sent it. Waiters are woken by each export (`wait_until`), never by a timer.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from llama_agents._serving import HttpServer


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def decode(body: bytes) -> list[SpanRecord]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=ProtoSpan.SpanKind.Name(span.kind),
                        service=service,
                        attributes=_attributes(span.attributes),
                    )
                )
    return spans


class OtlpCollector:
    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []
        self.exports = 0
        self._changed = asyncio.Condition()
        self.url = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/traces")
        async def traces(request: Request) -> Response:
            body = await request.body()
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            spans = decode(body)
            async with self._changed:
                self.spans.extend(spans)
                self.exports += 1
                self._changed.notify_all()
            return Response(
                ExportTraceServiceResponse().SerializeToString(),
                media_type="application/x-protobuf",
            )

        return app

    async def wait_until(
        self, predicate: Callable[[list[SpanRecord]], bool], timeout: float
    ) -> list[SpanRecord]:
        """The spans received once `predicate(spans)` holds, checked at each export."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.spans))
        return list(self.spans)

    def env(self, service_name: str) -> dict[str, str]:
        """What a process needs to export its traces here, fast."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.url,
            "OTEL_SERVICE_NAME": service_name,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }


@asynccontextmanager
async def running_collector() -> AsyncIterator[OtlpCollector]:
    collector = OtlpCollector()
    server = HttpServer(collector.app(), host="127.0.0.1", port=0)
    started = asyncio.Event()

    def on_started(port: int) -> None:
        collector.url = f"http://127.0.0.1:{port}"
        started.set()

    serving = asyncio.create_task(server.serve(on_started=on_started))
    try:
        async with asyncio.timeout(30):
            await started.wait()
        yield collector
    finally:
        server.stop()
        await asyncio.gather(serving, return_exceptions=True)
