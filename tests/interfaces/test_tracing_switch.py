"""Tracing is off and free unless `OTEL_TRACES_EXPORTER` asks for it; on, the embedded queue
carries the trace context in the message's own headers. Each case runs in a fresh
interpreter: what gets imported, and the process-wide tracer provider, are only visible there."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from tests.support.helpers import DEADLINE

#: Publishes one message on the embedded queue and has it consumed; prints what it saw.
SCRIPT = """
import asyncio, json, sys
# FastAPI imports OpenTelemetry's API by itself when it is installed: the SDK, the exporters,
# the instrumentation and our own span code are what tracing would load.
HEAVY = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation",
         "llama_agents.tracing._")
from llama_agents import SimpleMessageQueue, QueueMessage
from tests.support.helpers import Collector

async def main():
    queue = SimpleMessageQueue()
    collector = Collector()
    start = await queue.register_consumer(collector.consumer("work"))
    consuming = asyncio.create_task(start())
    await queue.publish(QueueMessage(type="work", data={"task_id": "t-1"}))
    (message,) = await collector.wait_for(1)
    consuming.cancel()
    await queue.close()
    return message.headers

headers = asyncio.run(main())
if "opentelemetry.sdk" in sys.modules:
    from opentelemetry import trace
    trace.get_tracer_provider().force_flush()
print("RESULT " + json.dumps({"headers": headers,
      "otel": sorted(m for m in sys.modules if m.startswith(HEAVY))}), file=sys.stderr)
"""


async def run_script(script: str, env: dict[str, str]) -> tuple[Any, str]:
    """Run `script` in a fresh interpreter with no OTEL variables but `env`; what it printed
    on its `RESULT` line (JSON), and its stdout."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE * 2):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    line = next(line for line in err.decode().splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ")), out.decode()


async def run(env: dict[str, str]) -> tuple[dict[str, Any], str]:
    seen, out = await run_script(SCRIPT, env)
    assert isinstance(seen, dict)
    return seen, out


def spans_in(text: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (JSON objects one after another)."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) != -1:
        span, at = decoder.raw_decode(text, at)
        spans.append(span)
    return spans


async def test_without_otel_variables_nothing_is_imported_or_carried() -> None:
    seen, out = await run({})
    assert seen["otel"] == []
    assert "traceparent" not in seen["headers"]
    assert out == ""


async def test_exporter_none_is_off_too() -> None:
    seen, _ = await run({"OTEL_TRACES_EXPORTER": "none"})
    assert seen["otel"] == []


async def test_on_the_consume_span_continues_the_publish_span() -> None:
    seen, out = await run({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "unit"})
    assert "traceparent" in seen["headers"]
    spans = {span["name"]: span for span in spans_in(out)}
    publish, process = spans["publish work"], spans["process work"]
    assert publish["kind"] == "SpanKind.PRODUCER" and process["kind"] == "SpanKind.CONSUMER"
    assert process["parent_id"] == publish["context"]["span_id"]
    assert process["context"]["trace_id"] == publish["context"]["trace_id"]
    assert process["attributes"]["llama_agents.task_id"] == "t-1"
    assert process["resource"]["attributes"]["service.name"] == "unit"


#: Requests to the embedded queue's own app (in process, over ASGI); prints the spans made.
HTTP_SCRIPT = """
import asyncio, json, sys
import httpx
from llama_agents import SimpleMessageQueue, tracing
from llama_agents.message_queues.simple.server import create_app
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

tracing.enabled()
memory = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(memory))
app = create_app(SimpleMessageQueue())

TRACED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://queue") as client:
        for path in ("/", "/health", "/consumers"):
            assert (await client.get(path, headers=TRACED)).status_code == 200
        # An untraced caller: its reads start no trace, its writes do.
        assert (await client.get("/consumers")).status_code == 200
        assert (await client.post("/queues/work")).status_code == 200

asyncio.run(main())
spans = [(s.name, s.kind.name) for s in memory.get_finished_spans()]
print("RESULT " + json.dumps(spans), file=sys.stderr)
"""


async def http_spans(env: dict[str, str]) -> list[list[str]]:
    spans, _ = await run_script(HTTP_SCRIPT, {"OTEL_TRACES_EXPORTER": "console", **env})
    assert isinstance(spans, list)
    return spans


async def test_one_server_span_per_request_and_none_for_probes_or_untraced_reads() -> None:
    """FastAPI's own telemetry, as we set it: one server span per request; none of its
    operation spans (dependencies, endpoint, serialization: three more per request, each
    paid for on every request, sampled or not); none for `/health`; none for a read whose
    caller sent no trace context (it would be a trace of its own), one for a write."""
    spans = await http_spans({})
    assert spans == [
        ["GET /", "SERVER"],
        ["GET /consumers", "SERVER"],
        ["POST /queues/{message_type}", "SERVER"],
    ]


async def test_the_excluded_paths_are_the_otel_variables() -> None:
    spans = await http_spans({"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "/consumers"})
    assert spans == [
        ["GET /", "SERVER"],
        ["GET /health", "SERVER"],
        ["POST /queues/{message_type}", "SERVER"],
    ]


#: A trace the sampler dropped, carried on with no span: a message consumed in it, a message
#: published while handling it, a task's stored context used again (`task_context`,
#: `decision`). Prints the trace context each hop saw.
DROPPED_SCRIPT = """
import asyncio, json, sys
from opentelemetry import trace
from llama_agents import CallableMessageConsumer, QueueMessage, SimpleMessageQueue, tracing
from llama_agents.messages.records import TaskRecord
from llama_agents.tracing import _spans
from tests.support.helpers import Collector

DROPPED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
seen = {}

def current():
    context = trace.get_current_span().get_span_context()
    return [format(context.trace_id, "032x"), context.trace_flags.sampled]

async def main():
    tracing.enabled()
    queue = SimpleMessageQueue()
    onward = Collector()

    async def handle(message):
        seen["consumed_in"] = current()
        with tracing.step("work", message):
            await queue.publish(QueueMessage(type="onward", data={}))

    worker = CallableMessageConsumer(handler=handle, message_type="work")
    starts = [await queue.register_consumer(worker),
              await queue.register_consumer(onward.consumer("onward"))]
    running = [asyncio.create_task(start()) for start in starts]
    with tracing.task_context({"traceparent": DROPPED}):  # a request in a dropped trace
        await queue.publish(QueueMessage(type="work", data={}))
    (message,) = await onward.wait_for(1)
    seen["onward_headers"] = message.headers
    record = TaskRecord(task_id="t-1", input="x", trace_context={"traceparent": DROPPED})
    with tracing.task_context(record.trace_context):
        seen["task_context"] = current()
    with tracing.decision(record, "Pipeline"):
        seen["decision"] = current()
    seen["after"] = current()
    for index in range(_spans._PARSED_MAX + 10):
        _spans._parsed_of({"traceparent": f"00-{index:032x}-b7ad6b7169203331-00"})
    seen["parsed"] = len(_spans._parsed)
    for task in running:
        task.cancel()
    await queue.close()

asyncio.run(main())
trace.get_tracer_provider().force_flush()
print("RESULT " + json.dumps(seen), file=sys.stderr)
"""


async def test_a_dropped_trace_is_carried_on_with_no_span() -> None:
    """The cheap path most traces take (nine in ten at 10% sampling): no span is made, and
    the trace's context still reaches every hop, so nothing downstream starts a trace of its
    own. Parsed contexts are cached, within a bound."""
    seen, out = await run_script(
        DROPPED_SCRIPT,
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    )
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    assert seen["consumed_in"] == [trace_id, False]
    assert seen["onward_headers"]["traceparent"].startswith(f"00-{trace_id}-")
    assert seen["onward_headers"]["traceparent"].endswith("-00")
    assert seen["task_context"] == seen["decision"] == [trace_id, False]
    assert seen["after"] == ["0" * 32, False]
    assert 0 < seen["parsed"] <= 4096
    assert spans_in(out) == []  # a dropped parent drops every span under it
