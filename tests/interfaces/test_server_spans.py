"""Our apps' server spans (`tracing._http.ServerSpans`): one per request where a span records
(named by its route, with its status), none where the trace is dropped but its context still
carried to the handler, none for an untraced read. Each case runs in a fresh interpreter: the
tracer provider and its sampler are process-wide."""

from __future__ import annotations

from typing import Any

from tests.interfaces.test_tracing_switch import run_script

#: An app of ours in miniature, served in process; prints its spans and what handlers saw.
SCRIPT = """
import asyncio, json, sys
import httpx
from fastapi import FastAPI, Response
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from llama_agents import tracing

tracing.enabled()
memory = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(memory))
app = FastAPI(telemetry=tracing.http_telemetry())

@app.post("/items/{item_id}")
async def create(item_id: str) -> dict:
    seen = {}
    propagate.inject(seen)  # what a publish from this handler would carry
    return seen

@app.get("/items/{item_id}")
async def read(item_id: str) -> dict:
    seen = {}
    propagate.inject(seen)
    return seen

@app.post("/unavailable")
async def unavailable() -> Response:
    return Response(status_code=503)

@app.post("/boom")
async def boom() -> None:
    raise RuntimeError("the handler broke")

tracing.instrument_app(app)
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-"

async def main():
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    seen = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        async def call(name, method, path, flags=None):
            headers = {"traceparent": CALLER + flags} if flags else {}
            response = await client.request(method, path, headers=headers)
            seen[name] = {"status": response.status_code,
                          "context": response.json() if response.status_code == 200 else None}
        await call("new", "POST", "/items/7")
        await call("new_again", "POST", "/items/8")
        await call("sampled_caller", "POST", "/items/7", "01")
        await call("dropped_caller", "POST", "/items/7", "00")
        await call("untraced_read", "GET", "/items/7")
        await call("traced_read", "GET", "/items/7", "01")
        await call("unavailable", "POST", "/unavailable")
        await call("boom", "POST", "/boom")
    return seen

seen = asyncio.run(main())
spans = [
    {"name": s.name, "kind": s.kind.name, "trace_id": f"{s.context.trace_id:032x}",
     "parent": f"{s.parent.span_id:016x}" if s.parent else None,
     "status": s.status.status_code.name, "attributes": dict(s.attributes),
     "events": [e.name for e in s.events]}
    for s in memory.get_finished_spans()
]
print("RESULT " + json.dumps({"seen": seen, "spans": spans}), file=sys.stderr)
"""

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


async def served(sampler: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result, _ = await run_script(
        SCRIPT, {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": sampler}
    )
    return result["seen"], result["spans"]


def trace_id(seen: dict[str, Any]) -> str:
    return str(seen["context"]["traceparent"]).split("-")[1]


async def test_a_recorded_request_is_one_span_named_by_its_route_with_its_status() -> None:
    seen, spans = await served("parentbased_always_on")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    # new, new_again, sampled_caller; the dropped caller's request makes none.
    assert [s["kind"] for s in by_name["POST /items/{item_id}"]] == ["SERVER"] * 3
    new = by_name["POST /items/{item_id}"][0]
    assert new["parent"] is None and new["status"] == "UNSET"
    attributes = new["attributes"]
    assert attributes["http.route"] == "/items/{item_id}"
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.path"] == "/items/7"
    # The handler runs in the span: what it would publish names the span's trace.
    assert trace_id(seen["new"]) == new["trace_id"]
    assert trace_id(seen["new_again"]) != new["trace_id"]

    # A traced caller's request continues its trace, under its span.
    continued = by_name["POST /items/{item_id}"][2]
    assert continued["trace_id"] == CALLER_TRACE and continued["parent"] == CALLER_SPAN
    # A traced caller's read has its span; an untraced read has none.
    assert [s["trace_id"] for s in by_name["GET /items/{item_id}"]] == [CALLER_TRACE]
    assert seen["untraced_read"]["context"] == {}

    # A 5xx answer and an exception are errors; the exception is recorded.
    (unavailable,) = by_name["POST /unavailable"]
    assert unavailable["status"] == "ERROR"
    assert unavailable["attributes"]["http.response.status_code"] == 503
    assert unavailable["attributes"]["error.type"] == "503"
    (boom,) = by_name["POST /boom"]
    assert seen["boom"]["status"] == 500
    assert boom["status"] == "ERROR" and boom["events"] == ["exception"]
    assert boom["attributes"]["error.type"] == "RuntimeError"
    assert len(spans) == 6


async def test_a_dropped_trace_makes_no_span_but_its_context_reaches_the_handler() -> None:
    # The caller's own trace, which its sampler dropped: carried on as it came.
    seen, spans = await served("parentbased_always_on")
    carried = seen["dropped_caller"]["context"]
    assert carried == {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}
    in_callers_trace = sorted(s["name"] for s in spans if s["trace_id"] == CALLER_TRACE)
    # The sampled caller's write and read; nothing for the dropped caller's write.
    assert in_callers_trace == ["GET /items/{item_id}", "POST /items/{item_id}"]

    # A new trace this server's sampler dropped: no span anywhere, but the handler is in it
    # (a task created there keeps that trace, unrecorded), and each request has its own.
    seen, spans = await served("always_off")
    assert spans == []
    new, again = seen["new"]["context"]["traceparent"], seen["new_again"]["context"]["traceparent"]
    for parent in (new, again):  # not sampled (the lowest flag bit; 0x02 says "random id")
        assert parent.startswith("00-") and len(parent) == 55 and not int(parent[-2:], 16) & 1
    assert trace_id(seen["new"]) != trace_id(seen["new_again"])
    assert seen["untraced_read"]["context"] == {}
