"""A local OTLP/HTTP sink for the benchmarks: takes `POST /v1/traces`, counts the spans.

It stands for a collector, so that tracing's cost is measured with spans really exported
(encoded, sent over HTTP) rather than dropped. It runs in the load generator's process: its
CPU is counted there, not in the system's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from llama_agents._serving import HttpServer


class OtlpSink:
    def __init__(self) -> None:
        self.url = ""
        self.exports = 0
        self.spans = 0

    def app(self) -> FastAPI:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        app = FastAPI()
        reply = ExportTraceServiceResponse().SerializeToString()

        @app.post("/v1/traces")
        async def traces(request: Request) -> Response:
            export = ExportTraceServiceRequest()
            export.ParseFromString(await request.body())
            self.exports += 1
            self.spans += sum(
                len(scope.spans) for rs in export.resource_spans for scope in rs.scope_spans
            )
            return Response(reply, media_type="application/x-protobuf")

        return app

    def env(self, ratio: float) -> dict[str, str]:
        """The standard variables a child needs to trace, sampled at `ratio`, to this sink."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.url,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": str(ratio),
        }


@asynccontextmanager
async def running_sink() -> AsyncIterator[OtlpSink]:
    sink = OtlpSink()
    server = HttpServer(sink.app(), host="127.0.0.1", port=0)
    started = asyncio.Event()

    def on_started(port: int) -> None:
        sink.url = f"http://127.0.0.1:{port}"
        started.set()

    serving = asyncio.create_task(server.serve(on_started=on_started))
    try:
        async with asyncio.timeout(30):
            await started.wait()
        yield sink
    finally:
        server.stop()
        await asyncio.gather(serving, return_exceptions=True)
