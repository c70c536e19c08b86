"""Benchmark workflow runs served by `WorkflowService` on RabbitMQ, against a run with no framework.

Each run is a two-step llama-index `Workflow` (`TwoCalls`): each step makes one chat
completion through llama-index's `OpenAI` client and writes one custom event (`Progress`) to
the run's stream. The LLM is a stub (an OpenAI-compatible aiohttp server) that answers every
completion after ``--llm-delay`` seconds (1 s), so a run takes about 2 x delay and the ideal
wall time of ``--runs`` runs with ``--in-flight`` of them at once is
``runs x 2 x delay / in_flight`` (20 s for 1,000 runs at 100 in flight). Completions go through
several identical clients of ``--llm-pool`` (10) connections each, in the replicas and the
baseline alike (httpcore's pool costs CPU per request in proportion to its size: one client
with hundreds of connections would dominate both); ``--llm-pool 0`` uses one client.

The script starts, by running itself again with ``--role``, each part in its own OS process:

* the stub LLM (started once; its CPU is reported apart from the system's);
* for each ``--in-flight`` value (``--in-flight 100,400`` runs both): the control plane
  (``ControlPlaneServer`` over HTTP on a free port, a fresh SQLite state file in a temporary
  folder, an exchange of its own named ``bench_wf_<random>``) and ``--replicas`` (2)
  ``WorkflowService`` replicas of one service, each holding at most ``max_concurrent_runs``
  runs (in_flight / replicas unless ``--max-concurrent-runs`` says otherwise);
* for each ``--in-flight`` value, the ``bare`` baseline: the same workflow, the same client,
  the same stub, run in one process with no framework (``asyncio.gather`` under a semaphore of
  in_flight, each run's stream read to its end). It says ``READY`` once it is done, with its
  figures as JSON on that line.

The benchmark process itself is the client: it keeps in_flight runs in flight in all (one
worker per run in flight), each created and followed in one request with the SDK's
``stream_task`` (``POST /tasks/stream {"input", "service"}``; httpx, in pools of
``POOL_SIZE`` connections) until its terminal ``TaskFinished`` event, whose result is
checked. The client reads each result from its stream, so its tasks publish no result
message (``publish_result=False``); ``--result-messages`` has each also publish its result
to the ``human`` queue, the default for tasks (the queue is deleted at the end, unread).
``--two-requests`` creates each task with ``POST /tasks``, then follows it with
``GET /tasks/{id}/events``, as before that route existed. ``--warmup`` runs go
first, outside the figures.

Each phase prints JSON lines on stdout (progress goes to stderr):

* ``mesh``: wall time (first POST to last terminal event) next to the ideal and its %
  (``pct_of_ideal`` = ideal / wall x 100), runs/s, events delivered to the client and
  events/s, time to first event p50/p99 (from before the POST to the first event line),
  run latency p50/p99, ``errors`` (failed requests, runs that did not complete, streams that
  ended without their terminal event) and ``wrong`` (a result other than the one expected);
  ``hops_p50_ms``/``hops_p99_ms`` split each run at its two completions (each `Progress`
  carries when its completion was asked and answered): start to first call, the calls,
  between them, last answer to the terminal event at the client, first answer to the first
  event at the client; ``dispatch_hops_*`` split the start from a sample of task records
  (POST to task saved, to step saved, to the first call at the replica);
* ``cpu``: CPU ms per run of the control plane and of each replica (and their sum, the
  framework's), peak RSS of each, RSS per run in flight of each replica ((peak - RSS after
  warm-up) / max_concurrent_runs), and, apart, the client's, the stub's and the broker's
  (when its ``beam.smp`` is visible); the cores the benchmark's processes used and would
  need to finish in the ideal time, and how busy the machine was (``other_work_cores``: CPU
  of other work on the same machine, competing with it);
* ``bare``: the baseline's wall time, % of ideal, CPU ms per run, peak RSS, hops; twice:
  ``"gc": "default"`` (a plain script) and ``"gc": "tuned"`` (its collector tuned after the
  warm-up as every served process tunes its own, `tune_gc_for_serving`);
* with ``--side-by-side``, the plain baseline runs *alongside* the mesh instead of after it:
  it warms up first, then starts its measured runs as the mesh starts its, in its own process
  on its own stub; its ``bare`` line says ``"alongside_mesh": true`` and there is no tuned
  one. Both meet the same machine at the same moment, so their ratio does not move with what
  else the host does from one minute to the next (on a shared host, sequential phases of the
  same code differ by ±15%); the mesh's wall time is then shared with the baseline, so take
  the % of ideal from a run without it;
* ``summary``: % of ideal and framework CPU per run / bare CPU per run next to the targets
  (``framework_over_bare``: against the plain script; ``framework_over_bare_tuned_gc``:
  against the tuned one);
* with ``--rounds N`` (N > 1), the mesh and bare phases run N times over, one after the
  other, and a ``rounds`` line gives each figure's median over the rounds (``*_median``)
  and every round's value (``*_all``): on a shared machine single runs differ by ±10%.

``--system floor`` serves the same runs to the same client with the floor instead of the
framework (``_floor.py``): the same libraries, used as cheaply as we know how, doing only the
durable work a streamed run needs (save the task, publish its step, checkpoint after the
first step, log the events and the result, stream them; every message persistent and
confirmed). Its CPU over bare is what the stack costs whoever builds on it; the framework's
over the floor is what our own code adds. Its lines say ``"system": "floor"``.

``--profile-dir DIR`` profiles the control plane and the replicas during the measured runs,
with cProfile (``DIR/<in_flight>/<role>.prof``) or py-spy (``--profiler py-spy``,
``DIR/<in_flight>/<role>.txt``).

Run it from the project root::

    .venv/bin/python benchmarks/workflow_runs.py --runs 100
    .venv/bin/python benchmarks/workflow_runs.py --runs 1000 --in-flight 100,400
    .venv/bin/python benchmarks/workflow_runs.py --runs 1000 --in-flight 100,400 --rounds 3
    .venv/bin/python benchmarks/workflow_runs.py --runs 1000 --in-flight 100,400 --rounds 3 \
        --side-by-side
    .venv/bin/python benchmarks/workflow_runs.py --runs 1000 --in-flight 100,400 --rounds 3 \
        --side-by-side --system floor

The broker is ``--url``, by default ``LLAMA_AGENTS_AMQP_URL`` or the local broker. The script
reports figures only: it never passes or fails. Everything it declared on the broker is
deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import resource
import signal
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _floor
import httpx
from _common import (
    Child,
    Output,
    add_url_option,
    announce,
    broker_cpu_seconds,
    broker_error,
    broker_pids,
    cpu_seconds,
    delete_leftovers,
    description,
    machine_cpu_seconds,
    ms,
    peak_rss_mb,
    percentile,
    positive,
    py_spy_path,
    rss_mb,
    serve_control_plane,
    spawn,
    start_profiling,
    stop_child,
    stop_event,
    stop_profiling,
    wait_ready,
)
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from llama_agents import AsyncLlamaAgentsClient
from llama_agents._runtime import run, tune_gc_for_serving

BENCH = "workflows"
SERVICE = "bench_wf"
#: Seconds a child may take to become ready, and to exit after SIGTERM before it is killed.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: Seconds one run may take, end to end, before it counts as an error.
RUN_TIMEOUT = 120.0
#: The most connections one httpx client of the load generator holds (see benchmarks/tasks.py:
#: httpx spends CPU on every pooled connection at each request).
POOL_SIZE = 10
#: Runs whose records are read after a phase, to split the time before their first completion.
DISPATCH_SAMPLE = 200
#: The roles of `--system floor` (see _floor.py).
FLOOR_ROLES = ("floor-control-plane", "floor-replica")
TARGETS: dict[str, Any] = {"pct_of_ideal_min": 90, "framework_over_bare_max": 1.5}
SCRIPT = os.path.abspath(__file__)
OUT = Output(BENCH)
log, emit = OUT.log, OUT.emit


# -- the workflow (served by the replicas, run bare by the baseline) ------------------------


class Progress(Event):
    """The custom event each step writes to the run's stream: what its completion said, and
    when it was asked and answered (wall clock: every process is on this machine), from
    which the client tells where a run's time went."""

    step: str
    text: str
    asked_at: float
    answered_at: float


class Answered(Event):
    text: str


class TwoCalls(Workflow):
    """Two steps, one chat completion each; each streams what its completion said.

    The completions go through `llms` in turn (all alike; several only to keep each one's
    connection pool small, see `make_llms`).
    """

    def __init__(self, llms: list[Any]) -> None:
        super().__init__(timeout=RUN_TIMEOUT)
        self._llms = itertools.cycle(llms)

    async def _ask(self, step: str, text: str) -> Progress:
        from llama_index.core.llms import ChatMessage

        llm = next(self._llms)
        asked = time.time()
        response = await llm.achat([ChatMessage(role="user", content=text)])
        answer = str(response.message.content)
        return Progress(step=step, text=answer, asked_at=asked, answered_at=time.time())

    @step
    async def first(self, ctx: Context, ev: StartEvent) -> Answered:
        progress = await self._ask("first", f"first {ev.get('input')}")
        ctx.write_event_to_stream(progress)
        return Answered(text=progress.text)

    @step
    async def second(self, ctx: Context, ev: Answered) -> StopEvent:
        progress = await self._ask("second", f"second {ev.text}")
        ctx.write_event_to_stream(progress)
        return StopEvent(result=progress.text)


def expected(text: str) -> str:
    """A run's result: the stub answers `re: <the last user message>`."""
    return f"re: second re: first {text}"


def make_llms(stub_url: str, concurrency: int, pool: int) -> list[Any]:
    """llama-index `OpenAI` clients on the stub for `concurrency` completions at once.

    With `pool` > 0, one client per `pool` completions at once, each with a pool of that many
    connections: httpcore 1.0's pool scans every pooled connection (more than once) on each
    request and response (encode/httpcore#1035), so one client with hundreds of connections
    spends more CPU on its pool than on anything else, in the replicas and the baseline
    alike. With `pool` 0, one client with the openai SDK's default pool.
    """
    from llama_index.llms.openai import OpenAI

    def one(http: httpx.AsyncClient | None) -> Any:
        return OpenAI(
            model="gpt-4o-mini",
            api_key="sk-bench",
            api_base=stub_url,
            max_retries=0,
            timeout=RUN_TIMEOUT,
            async_http_client=http,
        )

    if pool <= 0:
        return [one(None)]
    clients = math.ceil(concurrency / pool)
    size = math.ceil(concurrency / clients)
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    timeout = httpx.Timeout(RUN_TIMEOUT, connect=10.0)
    return [one(httpx.AsyncClient(limits=limits, timeout=timeout)) for _ in range(clients)]


# -- the child roles --------------------------------------------------------------------


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


async def run_stub(args: argparse.Namespace) -> None:
    """An OpenAI-compatible chat server: every completion answers `re: <last message>` after
    `--llm-delay` seconds. Kept minimal (aiohttp, no access log) so it is never the bottleneck."""
    from aiohttp import web

    stop = stop_event()
    delay: float = args.llm_delay
    counter = itertools.count(1)

    async def chat(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        messages = body.get("messages") or [{}]
        await asyncio.sleep(delay)
        content = "re: " + _message_text(messages[-1])
        reply = {
            "id": f"chatcmpl-{next(counter)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 8, "completion_tokens": 8, "total_tokens": 16},
        }
        return web.Response(body=json.dumps(reply).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # Our own socket: a deep accept backlog for hundreds of connections opened at once.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    site = web.SockSite(runner, sock)
    await site.start()
    announce(f"http://127.0.0.1:{sock.getsockname()[1]}/v1")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def run_control_plane(args: argparse.Namespace) -> None:
    """The control plane: serve HTTP on a free port until SIGTERM, then clean the broker."""
    from llama_agents import (
        ControlPlaneServer,
        Pipeline,
        PipelineOrchestrator,
        RabbitMQMessageQueue,
        ServiceStep,
    )

    stop = stop_event(args.profile)
    queue = RabbitMQMessageQueue(url=args.url, exchange_name=args.exchange)
    # Tasks name their service, so the orchestrator is never asked; the control plane needs one.
    orchestrator = PipelineOrchestrator(Pipeline.sequence(ServiceStep(SERVICE)))
    control_plane = ControlPlaneServer(
        queue, orchestrator, host="127.0.0.1", port=0, prefetch=args.cp_prefetch
    )
    await serve_control_plane(
        control_plane, queue, stop, start=START_TIMEOUT, stop_timeout=STOP_TIMEOUT
    )


async def run_replica(args: argparse.Namespace) -> None:
    """One `WorkflowService` replica: consume, register, serve until SIGTERM, clean up."""
    from llama_agents import RabbitMQMessageQueue, WorkflowService

    stop = stop_event(args.profile)
    queue = RabbitMQMessageQueue(url=args.url, exchange_name=args.exchange)
    service = WorkflowService(
        TwoCalls(make_llms(args.stub, args.max_runs, args.llm_pool)),
        queue,
        service_name=SERVICE,
        description="Two chat completions, each streaming one event.",
        max_concurrent_runs=args.max_runs,
        event_coalesce_s=args.coalesce,
    )
    try:
        consuming = await service.launch_local()
        await service.register_to_control_plane(args.control_plane)
        tune_gc_for_serving()  # as `llama-agents serve` does once ready
        announce(f"{SERVICE} replica {service.control_address}")
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({consuming, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
    finally:
        try:
            await service.deregister_from_message_queue()
            await queue.cleanup()
        finally:
            await queue.close()


async def run_bare(args: argparse.Namespace) -> None:
    """The baseline: `--runs` runs of the same workflow in this process, no framework; says
    READY once done, with its figures as JSON on that line."""
    workflow = TwoCalls(make_llms(args.stub, args.in_flight, args.llm_pool))
    semaphore = asyncio.Semaphore(args.in_flight)

    async def one(text: str) -> tuple[bool, int, dict[str, float] | None]:
        async with semaphore:
            started = time.time()
            handler = workflow.run(input=text)
            progress: list[dict[str, Any]] = []
            async for event in handler.stream_events():
                if isinstance(event, Progress):
                    progress.append(event.model_dump())
            result = await handler
            split = hops(progress, started, None, time.time())
            return result == expected(text), len(progress), split

    async def batch(count: int, prefix: str) -> tuple[list[Any], float, float]:
        cpu_before, started = time.process_time(), time.perf_counter()
        results = await asyncio.gather(
            *(one(f"{prefix}-{index}") for index in range(count)), return_exceptions=True
        )
        return results, time.perf_counter() - started, time.process_time() - cpu_before

    if args.warmup:
        await batch(args.warmup, "warmup")
    if args.tuned_gc:
        tune_gc_for_serving()  # what a served process does once ready
    if args.hold:
        # Side by side: warm, say so, and start the measured runs when the mesh starts its.
        go = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
        announce("warm")
        await go.wait()
    results, wall, cpu = await batch(args.runs, "bare")
    done = [r for r in results if isinstance(r, tuple)]
    failures = [r for r in results if not isinstance(r, tuple)]
    figures = {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "errors": len(failures),
        "wrong": sum(not ok for ok, _, _ in done),
        "events": sum(events for _, events, _ in done),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        **hop_figures([split for _, _, split in done if split]),
    }
    if failures:
        figures["first_error"] = f"{type(failures[0]).__name__}: {failures[0]}"
    if args.hold:
        await asyncio.to_thread(Path(args.figures_file).write_text, json.dumps(figures))
        return
    announce(json.dumps(figures))


# -- where a run's time goes -------------------------------------------------------------


def hops(
    progress: list[dict[str, Any]], started: float, first_seen: float | None, ended: float
) -> dict[str, float] | None:
    """One run's time split at its two completions (wall-clock seconds).

    `started` is the POST (or the bare `workflow.run`), `first_seen` when the client got the
    first event (None for the baseline), `ended` when it got the terminal event (or the
    baseline its result).
    """
    by_step = {p.get("step"): p for p in progress}
    first, second = by_step.get("first"), by_step.get("second")
    if first is None or second is None:
        return None
    split = {
        "start_to_first_call": first["asked_at"] - started,
        "first_call": first["answered_at"] - first["asked_at"],
        "between_calls": second["asked_at"] - first["answered_at"],
        "second_call": second["answered_at"] - second["asked_at"],
        "second_answer_to_end": ended - second["answered_at"],
    }
    if first_seen is not None:
        split["first_answer_to_first_event_at_client"] = first_seen - first["answered_at"]
    return split


def hop_figures(splits: list[dict[str, float]], prefix: str = "") -> dict[str, Any]:
    """The p50 and p99 of every hop, in ms."""
    if not splits:
        return {}
    names = list(splits[0])
    return {
        f"{prefix}hops_p50_ms": {n: ms(percentile([s[n] for s in splits], 0.5)) for n in names},
        f"{prefix}hops_p99_ms": {n: ms(percentile([s[n] for s in splits], 0.99)) for n in names},
    }


# -- the client -------------------------------------------------------------------------


@dataclass
class Outcome:
    """One run seen by the client (perf_counter times)."""

    posted: float
    posted_wall: float = 0.0
    task_id: str | None = None
    first_event: float | None = None
    first_event_wall: float | None = None
    finished: float | None = None
    finished_wall: float | None = None
    events: int = 0
    progress: list[dict[str, Any]] = field(default_factory=list)
    correct: bool = False
    error: str | None = None


class Client:
    """The project's SDK on the control plane: `POOL_SIZE` connections per client, used in
    turn (httpx spends CPU on every pooled connection at each request)."""

    def __init__(
        self, clients: list[AsyncLlamaAgentsClient], one_request: bool, result_messages: bool
    ) -> None:
        self.clients = clients
        self.one_request = one_request
        self.result_messages = result_messages
        self._next = itertools.count()

    @classmethod
    async def open(
        cls,
        base_url: str,
        concurrency: int,
        stack: contextlib.AsyncExitStack,
        *,
        one_request: bool = True,
        result_messages: bool = False,
    ) -> Client:
        pools = math.ceil(concurrency / POOL_SIZE)
        size = math.ceil(concurrency / pools)
        clients = []
        for _ in range(pools):
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            client = AsyncLlamaAgentsClient(
                base_url, timeout=RUN_TIMEOUT, transport=httpx.AsyncHTTPTransport(limits=limits)
            )
            clients.append(await stack.enter_async_context(client))
        return cls(clients, one_request, result_messages)

    async def run_one(self, text: str) -> Outcome:
        """Create the run's task and stream its events to the terminal one: in one request
        (`stream_task`), or, with `--two-requests`, `create_task` then `stream_events`."""
        client = self.clients[next(self._next) % len(self.clients)]
        outcome = Outcome(posted=time.perf_counter(), posted_wall=time.time())
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                publish = self.result_messages
                if self.one_request:
                    stream = await client.stream_task(text, service=SERVICE, publish_result=publish)
                else:
                    created = await client.create_task(
                        text, service=SERVICE, publish_result=publish
                    )
                    stream = client.stream_events(created)
                task_id = outcome.task_id = stream.task_id
                async for event in stream:
                    now, wall = time.perf_counter(), time.time()
                    if outcome.first_event is None:
                        outcome.first_event, outcome.first_event_wall = now, wall
                    outcome.events += 1
                    if event.type == Progress.__name__:
                        outcome.progress.append(event.data)
                    elif event.is_terminal:
                        outcome.finished, outcome.finished_wall = now, wall
                        data = event.data
                        if data.get("status") != "completed":
                            outcome.error = f"task {data.get('status')}: {data.get('error')}"
                        outcome.correct = data.get("result") == expected(text)
                if outcome.finished is None and outcome.error is None:
                    outcome.error = await self._missing_end(client, task_id, outcome.events)
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome

    @staticmethod
    async def _missing_end(client: AsyncLlamaAgentsClient, task_id: str, seen: int) -> str:
        """Why a stream ended without its terminal event: what the task and its log say now."""
        record = await client.get_task(task_id)
        types = [event.type for event in await client.get_events(task_id)]
        return (
            f"task {task_id}: the stream ended after {seen} events without TaskFinished;"
            f" the task is now {record.status.value} and its log holds {types}"
        )

    async def dispatch_hops(self, outcomes: list[Outcome], sample: int) -> dict[str, Any]:
        """Where the time before a run's first completion went, from the control plane's own
        records of `sample` runs (read after the phase): POST to task saved, to step saved,
        to the first completion asked at the replica."""
        done = [o for o in outcomes if o.task_id and len(o.progress) == 2]
        chosen = done[:: max(1, len(done) // sample)][:sample]
        splits: list[dict[str, float]] = []
        for outcome in chosen:
            assert outcome.task_id is not None
            record = await self.clients[0].get_task(outcome.task_id)
            if not record.steps:
                continue
            created = record.created_at.timestamp()
            step_saved = record.steps[0].created_at.timestamp()
            asked = min(p["asked_at"] for p in outcome.progress)
            splits.append(
                {
                    "post_to_task_saved": created - outcome.posted_wall,
                    "task_saved_to_step_saved": step_saved - created,
                    "step_saved_to_first_call_at_replica": asked - step_saved,
                }
            )
        return {"dispatch_sample": len(splits), **hop_figures(splits, prefix="dispatch_")}

    async def run_many(self, count: int, in_flight: int, prefix: str) -> list[Outcome]:
        """`count` runs, `in_flight` of them at a time (one worker per run in flight)."""
        indexes = iter(range(count))
        outcomes: list[Outcome] = []

        async def worker() -> None:
            for index in indexes:
                outcomes.append(await self.run_one(f"{prefix}-{index}"))

        await asyncio.gather(*(worker() for _ in range(min(in_flight, count))))
        return outcomes


# -- the benchmark ----------------------------------------------------------------------


@dataclass
class Settings:
    url: str
    runs: int
    in_flights: list[int]
    replicas: int
    max_runs: int | None
    llm_delay: float
    warmup: int
    coalesce: float
    llm_pool: int
    cp_prefetch: int | None
    skip_bare: bool
    side_by_side: bool
    two_requests: bool
    result_messages: bool
    rounds: int
    profile_dir: str | None
    profiler: str
    system: str = "framework"

    def ideal(self, in_flight: int) -> float:
        """Every run takes 2 x delay, `in_flight` of them at a time (no more than there are)."""
        return self.runs * 2 * self.llm_delay / min(in_flight, self.runs)

    def max_runs_for(self, in_flight: int) -> int:
        return self.max_runs or math.ceil(in_flight / self.replicas)


@dataclass
class System:
    """One phase's control plane and replicas."""

    exchange: str
    base_url: str = ""
    control_plane: Child | None = None
    replicas: list[Child] = field(default_factory=list)

    @property
    def children(self) -> list[Child]:
        return ([self.control_plane] if self.control_plane else []) + self.replicas


def profile_dir(settings: Settings, in_flight: int) -> str:
    """Where one phase's profiles go."""
    assert settings.profile_dir is not None
    directory = Path(settings.profile_dir) / str(in_flight)
    directory.mkdir(parents=True, exist_ok=True)
    return str(directory)


def queues(exchange: str) -> list[str]:
    """The queues a phase declares on `exchange` (deleted at the end, if left)."""
    from llama_agents.message_queues.rabbitmq.topology import dead_letter_queue_name, queue_name

    names = [queue_name(exchange, name) for name in (SERVICE, "control_plane", "human")]
    return [*names, dead_letter_queue_name(exchange)]


async def start_system(
    settings: Settings, in_flight: int, stub_url: str, state_dir: str, system: System
) -> None:
    env = dict(os.environ)
    env["LLAMA_AGENTS_STATE_PATH"] = os.path.join(state_dir, f"cp-{in_flight}.sqlite3")
    common = [f"--url={settings.url}", f"--exchange={system.exchange}"]

    def profile_args(role: str) -> list[str]:
        if settings.profile_dir and settings.profiler == "cprofile":
            path = os.path.join(profile_dir(settings, in_flight), f"{role}.prof")
            return [f"--profile={path}"]
        return []

    extra = [*common, *profile_args("control-plane")]
    if settings.cp_prefetch is not None:
        extra.append(f"--cp-prefetch={settings.cp_prefetch}")
    floor = settings.system == "floor"
    role = "floor-control-plane" if floor else "control-plane"
    system.control_plane = await spawn(OUT, SCRIPT, role, extra, env, name="control-plane")
    system.base_url = await wait_ready(system.control_plane, START_TIMEOUT)
    log(f"control plane pid {system.control_plane.pid} at {system.base_url}")
    for number in range(1, settings.replicas + 1):
        name = f"replica-{number}"
        extra = [
            *common,
            f"--stub={stub_url}",
            f"--control-plane={system.base_url}",
            f"--max-runs={settings.max_runs_for(in_flight)}",
            f"--coalesce={settings.coalesce}",
            f"--llm-pool={settings.llm_pool}",
            *profile_args(name),
        ]
        role = "floor-replica" if floor else "replica"
        system.replicas.append(await spawn(OUT, SCRIPT, role, extra, env, name=name))
    await asyncio.gather(*(wait_ready(child, START_TIMEOUT) for child in system.replicas))
    log("replicas pids " + ", ".join(f"{c.role} {c.pid}" for c in system.replicas))


async def stop_system(settings: Settings, system: System) -> None:
    # Replicas first: the control plane then deletes the exchange they no longer use.
    for child in reversed(system.children):
        code = await stop_child(child, STOP_TIMEOUT)
        if code not in (0, None):
            log(f"{child.role} exited with {code}")
    with contextlib.suppress(Exception):
        leftovers = await delete_leftovers(settings.url, system.exchange, queues(system.exchange))
        if leftovers:
            log(f"deleted what the children left: {', '.join(leftovers)}")


def _p(values: list[float], fraction: float) -> float | None:
    return ms(percentile(values, fraction)) if values else None


async def mesh_phase(
    settings: Settings,
    in_flight: int,
    stub: Child,
    state_dir: str,
    *,
    on_measuring: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Serve the workflow, drive `--runs` runs through it; emit `mesh` and `cpu`.
    `on_measuring` is called as the measured runs start (after the warm-up)."""
    system = System(exchange=f"bench_wf_{uuid.uuid4().hex[:8]}")
    max_runs = settings.max_runs_for(in_flight)
    try:
        await start_system(settings, in_flight, stub.ready_text, state_dir, system)
        async with contextlib.AsyncExitStack() as stack:
            client = await Client.open(
                system.base_url,
                in_flight,
                stack,
                one_request=not settings.two_requests,
                result_messages=settings.result_messages,
            )
            if settings.warmup:
                log(f"in flight {in_flight}: {settings.warmup} warm-up runs")
                warm = await client.run_many(settings.warmup, in_flight, f"warmup-{in_flight}")
                bad = [o.error for o in warm if o.error]
                if bad:
                    log(f"  warm-up errors: {len(bad)}, first: {bad[0]}")
            children = system.children
            baseline_rss = {c.role: rss_mb(c.pid) for c in system.replicas}
            broker = broker_pids()
            log(
                f"in flight {in_flight}: {settings.runs} runs, {settings.replicas} replicas of"
                f" {max_runs} runs each; ideal {settings.ideal(in_flight):.1f} s"
            )
            before = {c.role: cpu_seconds(c.pid) for c in children}
            stub_before = cpu_seconds(stub.pid)
            broker_before = broker_cpu_seconds(broker)
            machine_before = machine_cpu_seconds()
            client_before = time.process_time()
            if settings.profile_dir:
                directory = profile_dir(settings, in_flight)
                await start_profiling(children, settings.profiler, directory)
            started = time.perf_counter()
            if on_measuring is not None:
                on_measuring()
            try:
                outcomes = await client.run_many(settings.runs, in_flight, f"run-{in_flight}")
            finally:
                if settings.profile_dir:
                    await stop_profiling(children, settings.profiler)
            last = max((o.finished for o in outcomes if o.finished), default=time.perf_counter())
            client_cpu = time.process_time() - client_before
            machine_after = machine_cpu_seconds()
            cpu = {c.role: cpu_seconds(c.pid) - before[c.role] for c in children}
            stub_cpu = cpu_seconds(stub.pid) - stub_before
            broker_after = broker_cpu_seconds(broker)
            peaks = {c.role: peak_rss_mb(c.pid) for c in children}
            # The floor keeps no task records to read back.
            dispatch = (
                await client.dispatch_hops(outcomes, DISPATCH_SAMPLE)
                if settings.system == "framework"
                else {}
            )
    finally:
        await stop_system(settings, system)

    wall = last - started
    ideal = settings.ideal(in_flight)
    failed = [o for o in outcomes if o.error]
    ttfe = [o.first_event - o.posted for o in outcomes if o.first_event is not None]
    latency = [o.finished - o.posted for o in outcomes if o.finished is not None]
    events = sum(o.events for o in outcomes)
    mesh: dict[str, Any] = {
        "bench": BENCH,
        "case": "mesh",
        "system": settings.system,
        "in_flight": in_flight,
        "runs": settings.runs,
        "replicas": settings.replicas,
        "max_concurrent_runs": max_runs,
        "llm_delay_s": settings.llm_delay,
        "event_coalesce_s": settings.coalesce,
        "llm_pool": settings.llm_pool,
        "client_requests_per_run": 2 if settings.two_requests else 1,
        "result_messages": settings.result_messages,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "pct_of_ideal": round(100.0 * ideal / wall, 1),
        "runs_per_s": round(settings.runs / wall, 1),
        "events": events,
        "events_per_run": round(events / settings.runs, 2),
        "events_per_s": round(events / wall, 1),
        "ttfe_p50_ms": _p(ttfe, 0.5),
        "ttfe_p99_ms": _p(ttfe, 0.99),
        "latency_p50_ms": _p(latency, 0.5),
        "latency_p99_ms": _p(latency, 0.99),
        "latency_max_ms": ms(max(latency)) if latency else None,
        "errors": len(failed),
        "wrong": sum(not o.correct for o in outcomes if not o.error),
        **hop_figures(
            [
                split
                for o in outcomes
                if o.finished_wall is not None
                and (split := hops(o.progress, o.posted_wall, o.first_event_wall, o.finished_wall))
            ]
        ),
    }
    mesh.update(dispatch)
    if failed:
        mesh["first_error"] = failed[0].error
    emit(mesh)
    log(
        f"  wall {wall:.2f} s ({mesh['pct_of_ideal']}% of ideal), ttfe p50"
        f" {mesh['ttfe_p50_ms']} ms, errors {mesh['errors']}, wrong {mesh['wrong']}"
    )

    per_run = 1000.0 / settings.runs
    processes: dict[str, Any] = {}
    for child in children:
        entry: dict[str, Any] = {
            "cpu_s": round(cpu[child.role], 3),
            "cpu_ms_per_run": round(cpu[child.role] * per_run, 3),
            "peak_rss_mb": peaks[child.role],
        }
        base = baseline_rss.get(child.role)
        peak = peaks[child.role]
        if base is not None and peak is not None:
            entry["rss_after_warmup_mb"] = base
            entry["rss_mb_per_run_in_flight"] = round((peak - base) / max_runs, 3)
        processes[child.role] = entry
    replicas_cpu = sum(cpu[c.role] for c in system.replicas)
    framework_cpu = sum(cpu.values())
    broker_cpu = (
        None if broker_before is None or broker_after is None else broker_after - broker_before
    )
    busy = machine_after[0] - machine_before[0]
    machine_total = machine_after[1] - machine_before[1]
    ours = framework_cpu + client_cpu + stub_cpu + (broker_cpu or 0.0)
    cpu_line: dict[str, Any] = {
        "bench": BENCH,
        "case": "cpu",
        "system": settings.system,
        "in_flight": in_flight,
        "runs": settings.runs,
        "framework_cpu_s": round(framework_cpu, 3),
        "framework_cpu_ms_per_run": round(framework_cpu * per_run, 3),
        "replicas_cpu_ms_per_run": round(replicas_cpu * per_run, 3),
        "control_plane_cpu_ms_per_run": round(cpu["control-plane"] * per_run, 3),
        "processes": processes,
        "client_cpu_ms_per_run": round(client_cpu * per_run, 3),
        "client_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "stub_cpu_ms_per_run": round(stub_cpu * per_run, 3),
        "broker_cpu_ms_per_run": None if broker_cpu is None else round(broker_cpu * per_run, 3),
        "cores": os.cpu_count(),
        # How busy the machine was over the phase, and how much of that was not this
        # benchmark (other work on the same cores competes with it).
        # This benchmark's own processes (broker included): the cores they used, and the
        # cores they would need to finish in the ideal time at the same CPU per run.
        "bench_cores": round(ours / wall, 2),
        "bench_cores_needed_at_ideal": round(ours / ideal, 2),
        "machine_busy_pct": round(100.0 * busy / machine_total, 1) if machine_total else None,
        "bare_alongside": on_measuring is not None,
        "machine_busy_cores": round(busy / wall, 2),
        "other_work_cores": round(max(0.0, busy - ours) / wall, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "profiled": settings.profiler if settings.profile_dir else None,
    }
    emit(cpu_line)
    log(
        f"  CPU ms/run: control plane {cpu_line['control_plane_cpu_ms_per_run']}, replicas"
        f" {cpu_line['replicas_cpu_ms_per_run']}, client {cpu_line['client_cpu_ms_per_run']},"
        f" stub {cpu_line['stub_cpu_ms_per_run']}"
    )
    return {"mesh": mesh, "cpu": cpu_line}


def bare_args(settings: Settings, in_flight: int, stub: Child, *, tuned_gc: bool) -> list[str]:
    """The bare child's arguments."""
    return [
        *(["--tuned-gc"] if tuned_gc else []),
        f"--stub={stub.ready_text}",
        f"--runs={settings.runs}",
        f"--in-flight={in_flight}",
        f"--warmup={settings.warmup}",
        f"--llm-pool={settings.llm_pool}",
    ]


async def bare_phase(
    settings: Settings, in_flight: int, stub: Child, *, tuned_gc: bool
) -> dict[str, Any]:
    """The same runs with no framework, in one process; emit `bare`. With `tuned_gc`, the
    process tunes its collector after the warm-up as the served processes do."""
    gc_mode = "tuned" if tuned_gc else "default"
    log(f"bare, in flight {in_flight}, gc {gc_mode}: {settings.runs} runs in one process")
    extra = bare_args(settings, in_flight, stub, tuned_gc=tuned_gc)
    stub_before = cpu_seconds(stub.pid)
    child = await spawn(OUT, SCRIPT, "bare", extra, dict(os.environ))
    try:
        figures = json.loads(await wait_ready(child, START_TIMEOUT + 2 * RUN_TIMEOUT))
    finally:
        await stop_child(child, STOP_TIMEOUT)
    stub_cpu = cpu_seconds(stub.pid) - stub_before
    return emit_bare(settings, in_flight, figures, gc_mode, stub_cpu, alongside=False)


async def mesh_and_bare_alongside(
    settings: Settings, in_flight: int, stub: Child, bare_stub: Child, state_dir: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mesh phase with the bare baseline (plain GC, its own stub) running its measured
    runs at the same time, in its own process: both meet the same machine, whatever else
    it is doing then, so their ratio is not a ratio of two moments of a shared host."""
    log(f"bare alongside the mesh, in flight {in_flight}: {settings.runs} runs in one process")
    figures_file = os.path.join(state_dir, "bare.json")
    extra = [
        *bare_args(settings, in_flight, bare_stub, tuned_gc=False),
        "--hold",
        f"--figures-file={figures_file}",
    ]
    child = await spawn(OUT, SCRIPT, "bare", extra, dict(os.environ), name="bare")
    try:
        await wait_ready(child, START_TIMEOUT + RUN_TIMEOUT)  # warmed up, holding
        stub_before = cpu_seconds(bare_stub.pid)

        def start_bare() -> None:
            child.process.send_signal(signal.SIGUSR1)

        served = await mesh_phase(settings, in_flight, stub, state_dir, on_measuring=start_bare)
        async with asyncio.timeout(2 * RUN_TIMEOUT):
            await child.process.wait()
        stub_cpu = cpu_seconds(bare_stub.pid) - stub_before
        figures = json.loads(await asyncio.to_thread(Path(figures_file).read_text))
    finally:
        await stop_child(child, STOP_TIMEOUT)
    bare = emit_bare(settings, in_flight, figures, "default", stub_cpu, alongside=True)
    return served, bare


def emit_bare(
    settings: Settings,
    in_flight: int,
    figures: dict[str, Any],
    gc_mode: str,
    stub_cpu: float,
    *,
    alongside: bool,
) -> dict[str, Any]:
    """Emit and return a bare phase's line."""
    ideal = settings.ideal(in_flight)
    bare = {
        "bench": BENCH,
        "case": "bare",
        "gc": gc_mode,
        "alongside_mesh": alongside,
        "in_flight": in_flight,
        "runs": settings.runs,
        "llm_delay_s": settings.llm_delay,
        "llm_pool": settings.llm_pool,
        "wall_s": figures["wall_s"],
        "ideal_s": round(ideal, 3),
        "pct_of_ideal": round(100.0 * ideal / figures["wall_s"], 1),
        "cpu_s": figures["cpu_s"],
        "cpu_ms_per_run": round(figures["cpu_s"] * 1000.0 / settings.runs, 3),
        "peak_rss_mb": figures["peak_rss_mb"],
        "events": figures["events"],
        "errors": figures["errors"],
        "wrong": figures["wrong"],
        # Alongside, its own stub served only the measured runs; else warm-up included.
        ("stub_cpu_ms_per_run" if alongside else "stub_cpu_ms_per_run_incl_warmup"): round(
            stub_cpu * 1000.0 / settings.runs, 3
        ),
        **{k: figures[k] for k in ("hops_p50_ms", "hops_p99_ms") if k in figures},
    }
    if "first_error" in figures:
        bare["first_error"] = figures["first_error"]
    emit(bare)
    log(
        f"  bare: wall {bare['wall_s']:.2f} s ({bare['pct_of_ideal']}% of ideal),"
        f" CPU {bare['cpu_ms_per_run']} ms/run"
    )
    return bare


async def main_async(settings: Settings) -> None:
    unreachable = await broker_error(settings.url)
    if unreachable:
        log(unreachable)
        emit({"bench": BENCH, "case": "error", "error": unreachable})
        return
    stub: Child | None = None
    bare_stub: Child | None = None
    try:
        extra = [f"--llm-delay={settings.llm_delay}"]
        stub = await spawn(OUT, SCRIPT, "stub", extra, dict(os.environ))
        log(f"stub LLM pid {stub.pid} at {await wait_ready(stub, START_TIMEOUT)}")
        if settings.side_by_side:
            bare_stub = await spawn(OUT, SCRIPT, "stub", extra, dict(os.environ), name="bare-stub")
            log(
                f"the bare baseline's stub pid {bare_stub.pid} at"
                f" {await wait_ready(bare_stub, START_TIMEOUT)}"
            )
        for in_flight in settings.in_flights:
            summaries = [
                await one_round(settings, in_flight, stub, index, bare_stub)
                for index in range(settings.rounds)
            ]
            if settings.rounds > 1:
                emit(rounds_summary(in_flight, summaries))
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        emit({"bench": BENCH, "case": "error", "error": f"{type(exc).__name__}: {exc}"})
    finally:
        for child in (stub, bare_stub):
            if child is not None:
                await stop_child(child, STOP_TIMEOUT)
    if settings.profile_dir:
        log(f"profiles in {settings.profile_dir}")


async def one_round(
    settings: Settings, in_flight: int, stub: Child, index: int, bare_stub: Child | None
) -> dict[str, Any]:
    """The mesh, then the bare baseline (plain and tuned GC), at `in_flight`; their summary.
    With `--side-by-side`, the plain baseline runs alongside the mesh instead (`bare_stub`)."""
    bare = tuned = None
    with tempfile.TemporaryDirectory(prefix="bench_wf_") as state_dir:
        if bare_stub is not None:
            served, bare = await mesh_and_bare_alongside(
                settings, in_flight, stub, bare_stub, state_dir
            )
        else:
            served = await mesh_phase(settings, in_flight, stub, state_dir)
    if not settings.skip_bare and bare_stub is None:
        bare = await bare_phase(settings, in_flight, stub, tuned_gc=False)
        tuned = await bare_phase(settings, in_flight, stub, tuned_gc=True)
    summary: dict[str, Any] = {
        "bench": BENCH,
        "case": "summary",
        "system": settings.system,
        "in_flight": in_flight,
        "round": index + 1,
        "runs": settings.runs,
        "wall_s": served["mesh"]["wall_s"],
        "ideal_s": served["mesh"]["ideal_s"],
        "pct_of_ideal": served["mesh"]["pct_of_ideal"],
        "framework_cpu_ms_per_run": served["cpu"]["framework_cpu_ms_per_run"],
        "control_plane_cpu_ms_per_run": served["cpu"]["control_plane_cpu_ms_per_run"],
        "replicas_cpu_ms_per_run": served["cpu"]["replicas_cpu_ms_per_run"],
        "bare_cpu_ms_per_run": bare["cpu_ms_per_run"] if bare else None,
        "bare_tuned_gc_cpu_ms_per_run": tuned["cpu_ms_per_run"] if tuned else None,
        "bare_alongside_mesh": bare_stub is not None,
        "targets": TARGETS,
    }
    if bare and bare["cpu_ms_per_run"] > 0:
        ratio = served["cpu"]["framework_cpu_ms_per_run"] / bare["cpu_ms_per_run"]
        summary["framework_over_bare"] = round(ratio, 2)
        ratio = served["cpu"]["replicas_cpu_ms_per_run"] / bare["cpu_ms_per_run"]
        summary["replicas_over_bare"] = round(ratio, 2)
    if tuned and tuned["cpu_ms_per_run"] > 0:
        ratio = served["cpu"]["framework_cpu_ms_per_run"] / tuned["cpu_ms_per_run"]
        summary["framework_over_bare_tuned_gc"] = round(ratio, 2)
    emit(summary)
    return summary


#: The figures `--rounds` reports the median of (each round's own, mesh and bare paired).
ROUND_FIGURES = (
    "pct_of_ideal",
    "framework_cpu_ms_per_run",
    "control_plane_cpu_ms_per_run",
    "replicas_cpu_ms_per_run",
    "bare_cpu_ms_per_run",
    "bare_tuned_gc_cpu_ms_per_run",
    "framework_over_bare",
    "replicas_over_bare",
    "framework_over_bare_tuned_gc",
)


def rounds_summary(in_flight: int, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds' medians (the machine's own noise, ±10% from one run to the next on a
    shared host, cancels out of each round's ratio more than out of single figures)."""
    line: dict[str, Any] = {
        "bench": BENCH,
        "case": "rounds",
        "in_flight": in_flight,
        "rounds": len(summaries),
        "targets": TARGETS,
    }
    for name in ROUND_FIGURES:
        values = sorted(s[name] for s in summaries if s.get(name) is not None)
        if values:
            line[f"{name}_median"] = round(statistics.median(values), 3)
            line[f"{name}_all"] = [s.get(name) for s in summaries]
    return line


def in_flight_list(text: str) -> list[int]:
    """An argparse type: `100` or `100,400`."""
    try:
        values = [positive(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected integers like 100,400: {exc}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one value")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description(__doc__))
    add_url_option(parser)
    parser.add_argument("--runs", type=positive, default=1000, help="runs per phase")
    parser.add_argument(
        "--in-flight",
        type=in_flight_list,
        default=[100],
        help="runs in flight at once; a list (100,400) runs a phase for each",
    )
    parser.add_argument("--replicas", type=positive, default=2, help="service replicas")
    parser.add_argument(
        "--max-concurrent-runs",
        type=positive,
        default=None,
        help="runs one replica holds at once (default: in_flight / replicas)",
    )
    parser.add_argument("--llm-delay", type=float, default=1.0, help="seconds per completion")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up runs before each phase")
    parser.add_argument(
        "--coalesce", type=float, default=0.05, help="the replicas' event_coalesce_s"
    )
    parser.add_argument(
        "--llm-pool",
        type=int,
        default=10,
        help="connections per OpenAI client (runs spread over several); 0: one client",
    )
    parser.add_argument(
        "--cp-prefetch",
        type=positive,
        default=None,
        help="the control plane's prefetch (default: the framework's)",
    )
    parser.add_argument("--skip-bare", action="store_true", help="no bare baseline")
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="the plain baseline runs at the same time as the mesh (the CPU ratio), not after",
    )
    parser.add_argument(
        "--rounds",
        type=positive,
        default=1,
        help="mesh and bare phases this many times over, each in_flight; then their medians",
    )
    parser.add_argument(
        "--result-messages",
        action="store_true",
        help="each task also publishes its result to `human` (default: read from its stream)",
    )
    parser.add_argument(
        "--two-requests",
        action="store_true",
        help="the client creates each task, then streams it (default: one POST /tasks/stream)",
    )
    parser.add_argument(
        "--system",
        choices=("framework", "floor"),
        default="framework",
        help="serve with the framework, or with the floor: the same libraries doing only the"
        " durable work a run needs (see _floor.py)",
    )
    parser.add_argument(
        "--profile-dir", default=None, help="profile the control plane and replicas, here"
    )
    parser.add_argument(
        "--profiler",
        choices=("cprofile", "py-spy"),
        default="cprofile",
        help="with --profile-dir: cProfile (main thread) or py-spy (every thread)",
    )
    # The child roles (the script starts itself with these).
    parser.add_argument(
        "--role",
        choices=("main", "stub", "control-plane", "replica", "bare", *FLOOR_ROLES),
        default="main",
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--exchange", help=argparse.SUPPRESS)
    parser.add_argument("--stub", help=argparse.SUPPRESS)
    parser.add_argument("--control-plane", help=argparse.SUPPRESS)
    parser.add_argument("--max-runs", type=positive, help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    parser.add_argument("--tuned-gc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--figures-file", help=argparse.SUPPRESS)
    return parser


async def run_floor_control_plane(args: argparse.Namespace) -> None:
    await _floor.control_plane(args, SERVICE)


async def run_floor_replica(args: argparse.Namespace) -> None:
    workflow = TwoCalls(make_llms(args.stub, args.max_runs, args.llm_pool))
    await _floor.replica(args, workflow, SERVICE)


ROLES = {
    "stub": run_stub,
    "control-plane": run_control_plane,
    "replica": run_replica,
    "bare": run_bare,
    "floor-control-plane": run_floor_control_plane,
    "floor-replica": run_floor_replica,
}


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.role != "main":
        if args.role == "bare":
            args.in_flight = args.in_flight[0]
        run(ROLES[args.role](args))
        return
    if args.profile_dir and args.profiler == "py-spy" and py_spy_path() is None:
        parser.error("--profiler py-spy: py-spy is not installed (pip install py-spy)")
    if args.llm_delay <= 0:
        parser.error("--llm-delay must be positive")
    if args.side_by_side and args.skip_bare:
        parser.error("--side-by-side runs the bare baseline: drop --skip-bare")
    settings = Settings(
        url=args.url,
        runs=args.runs,
        in_flights=args.in_flight,
        replicas=args.replicas,
        max_runs=args.max_concurrent_runs,
        llm_delay=args.llm_delay,
        warmup=max(0, args.warmup),
        coalesce=args.coalesce,
        llm_pool=args.llm_pool,
        cp_prefetch=args.cp_prefetch,
        skip_bare=args.skip_bare,
        side_by_side=args.side_by_side,
        two_requests=args.two_requests,
        result_messages=args.result_messages,
        rounds=args.rounds,
        profile_dir=args.profile_dir,
        profiler=args.profiler,
        system=args.system,
    )
    if settings.profile_dir:
        Path(settings.profile_dir).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run(main_async(settings))
    log(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
