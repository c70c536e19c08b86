"""Benchmark what tracing costs per hook and per HTTP request, in one process, without noise.

`tasks.py --tracing both` measures the whole system, but this machine's speed drifts by
more than the overhead it looks for. This script measures the parts one at a time, each in a
fresh interpreter (OpenTelemetry's set-up is the whole process's), with its collector tuned as
a served process's is (`tune_gc_for_serving`), exporting over OTLP/HTTP to a local sink
(`_otlp_sink.py`) that this process runs. CPU is the main thread's (`time.thread_time`): the
batch span processor exports in a thread of its own. One JSON line per measurement:

* ``hooks``: the tracing hooks the control plane calls for one two-step task (the task's
  trace started, then three times: its stored context entered, a decision, a publish, and a
  consume), µs per task, with the sampler (``parentbased_traceidratio``) at 0, 0.1 and 1, and
  with tracing off;
* ``service``: the hooks a service calls for one message (consumed, its step, its reply
  published), each message of a trace not seen before, sampled upstream at the ratio (flags
  ``01``) or dropped (``00``), µs per message: off, and at 0, 0.1 and 1;
* ``http``: one ``POST`` through a FastAPI app (httpx's ASGI transport, no sockets), µs per
  request: tracing off; on, at 0 and 0.1, with our server spans (`tracing.instrument_app`),
  and with FastAPI's own telemetry set to make the same one span (``fastapi_...``, what our
  apps used before); on with FastAPI's defaults (its operation spans too) at 0.1.

Run it from the project root::

    .venv/bin/python benchmarks/tracing_hooks.py
    .venv/bin/python benchmarks/tracing_hooks.py --iterations 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from _common import description, positive
from _otlp_sink import running_sink

from llama_agents._runtime import run

BENCH = "tracing_hooks"

#: The child: set tracing up (or not), measure, print one JSON line.
CHILD = """
import asyncio, json, os, sys, time
from llama_agents import QueueMessage, tracing
from llama_agents._runtime import tune_gc_for_serving
from llama_agents.messages.records import TaskRecord

kind, iterations = sys.argv[1], int(sys.argv[2])
tracing.enabled()
tune_gc_for_serving()

def per_call(work, warmup=500):
    for _ in range(warmup):
        work()
    started = time.thread_time()
    for _ in range(iterations):
        work()
    return (time.thread_time() - started) / iterations * 1e6

def hooks():
    record = TaskRecord.model_validate({"task_id": "t-1", "input": "x"})
    message = QueueMessage(type="step_a", data={"task_id": "t-1", "step_id": "s-1"})

    def task():
        tracing.start_task(record)
        for _ in range(3):
            with tracing.task_context(record.trace_context):
                with tracing.decision(record, "PipelineOrchestrator"):
                    with tracing.publishing(message, "rabbitmq", "exchange"):
                        pass
            headers = dict(message.headers)
            with tracing.consuming(
                message, "control_plane", system="rabbitmq", destination="q", headers=headers
            ) as settled:
                settled("ack")

    return per_call(task)

def service():
    import random

    # What a service sees: each message of a task it has not seen, its trace sampled
    # upstream at the control plane's ratio (flags 01) or dropped (00).
    ratio = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "0"))
    rng = random.Random(7)
    carriers = [
        {"traceparent": "00-%032x-%016x-%s" % (
            rng.getrandbits(128) | 1, rng.getrandbits(64) | 1,
            "01" if rng.random() < ratio else "00",
        )}
        for _ in range(iterations + 500)
    ]
    feed = iter(carriers)
    message = QueueMessage(type="step_a", data={"task_id": "t-1", "step_id": "s-1"})

    def one():
        headers = next(feed)
        with tracing.consuming(
            message, "step_a", system="rabbitmq", destination="q", headers=headers
        ) as settled:
            with tracing.step("step_a", message):
                reply = QueueMessage(type="control_plane", data={"task_id": "t-1"})
                with tracing.publishing(reply, "rabbitmq", "exchange"):
                    pass
            settled("ack")

    return per_call(one)

def http():
    import httpx
    from fastapi import FastAPI

    variant = os.environ["BENCH_HTTP"]
    if variant == "defaults":
        app = FastAPI()
    elif variant == "fastapi" and tracing.enabled():
        from llama_agents.tracing import _setup

        app = FastAPI(telemetry={"tracing": True, "metrics": False, "logs": False,
                                 "operation_spans": False, "exclude": _setup.excluded_path()})
    else:
        app = FastAPI(telemetry=tracing.http_telemetry())

    @app.post("/tasks")
    async def create(body: dict) -> dict:
        return {"task_id": "t-1", **body}

    if variant == "ours":
        tracing.instrument_app(app)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for _ in range(300):
                await client.post("/tasks", json={"input": "hi"})
            started = time.thread_time()
            for _ in range(iterations):
                await client.post("/tasks", json={"input": "hi"})
            return (time.thread_time() - started) / iterations * 1e6

    return asyncio.run(main())

us = {"hooks": hooks, "service": service, "http": http}[kind]()
tracing.shutdown()
print(json.dumps({"us": round(us, 1)}))
"""


async def measure(kind: str, iterations: int, env: dict[str, str]) -> float:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        kind,
        str(iterations),
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{kind} failed: {err.decode()[-2000:]}")
    figure: float = json.loads(out.decode().strip().splitlines()[-1])["us"]
    return figure


def emit(line: dict[str, Any]) -> None:
    print(json.dumps({"bench": BENCH, **line}), flush=True)


async def main_async(iterations: int) -> None:
    async with running_sink() as sink:

        def traced(ratio: float) -> dict[str, str]:
            return {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{sink.url}/v1/traces",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(ratio),
            }

        off = await measure("hooks", iterations, {})
        hooks = {"off": off}
        for ratio in (0.0, 0.1, 1.0):
            hooks[f"sampled_{ratio}"] = await measure("hooks", iterations, traced(ratio))
        emit({"case": "hooks", "unit": "us_per_task", "iterations": iterations, **hooks})
        service = {"off": await measure("service", iterations, {})}
        for ratio in (0.0, 0.1, 1.0):
            service[f"sampled_{ratio}"] = await measure("service", iterations, traced(ratio))
        emit({"case": "service", "unit": "us_per_message", "iterations": iterations, **service})

        http = {"off": await measure("http", iterations, {"BENCH_HTTP": "ours"})}
        for variant in ("ours", "fastapi"):
            for ratio in (0.0, 0.1):
                http[f"{variant}_sampled_{ratio}"] = await measure(
                    "http", iterations, {**traced(ratio), "BENCH_HTTP": variant}
                )
        http["fastapi_defaults_sampled_0.1"] = await measure(
            "http", iterations, {**traced(0.1), "BENCH_HTTP": "defaults"}
        )
        emit({"case": "http", "unit": "us_per_request", "iterations": iterations, **http})
        emit({"case": "otlp_sink", "exports": sink.exports, "spans": sink.spans})


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--iterations", type=positive, default=5000, help="tasks or requests per measurement"
    )
    args = parser.parse_args()
    run(main_async(args.iterations))


if __name__ == "__main__":
    main()
