"""Benchmark the core task loop on RabbitMQ, every part in its own OS process.

The script starts, by running itself again with ``--role``:

* the control plane (``ControlPlaneServer`` served over HTTP on a free port, a
  ``PipelineOrchestrator`` running ``step_a`` then ``step_b``, a fresh SQLite state file in a
  temporary folder, an exchange of its own named ``bench_tasks_<random>``);
* the ``step_a`` and ``step_b`` ``ComponentService`` processes (trivial async functions that
  append `` a`` and `` b``; no LLM), each registered with the control plane.

The benchmark process itself is the load generator: it drives the control plane through the
project's own SDK: ``AsyncLlamaAgentsClient`` (``create_task``, then ``wait_for_result``,
which long-polls ``GET /tasks/{id}/result?wait=``), a few of them used in turn, with
connection pools of ``POOL_SIZE`` that together hold one connection per task of a burst
(httpx spends CPU on every pooled connection at each request: small pools keep the load
generator's own CPU, reported apart, low). A child is ready once it printed ``READY`` on its
stdout (the control plane: once it answers HTTP; a service: once its queue is consumed and
its registration was accepted); the script then checks ``health()`` and ``list_services()``.

It measures, each printed as one JSON line on stdout (progress goes to stderr):

* ``idle``: end-to-end latency of one task at a time (``--idle`` tasks after ``--warmup``),
  from just before the POST to the receipt of the result (p50, p90), and where that time
  goes (``hops_ms``, medians taken from the task's record: the control plane's timestamps);
* ``burst``: ``--tasks`` tasks submitted at once, each followed by its long poll:
  ``tasks_per_s`` (tasks / seconds from the first POST to the last result), latency p50 and
  p99, ``errors`` (failed requests or tasks) and ``wrong`` (a result other than
  ``"<input> a b"``). With ``--repeat K`` the burst runs K times and the median run (by
  tasks/s) is reported;
* ``cpu``: for that burst, CPU seconds of the load generator (``client_cpu_s``) apart from
  the system's (``system_cpu_s``, the three children, also given one by one), CPU ms per
  task, peak RSS per process, and the RabbitMQ broker's CPU when its ``beam.smp`` is visible;
* ``summary``: tasks/s and idle p50 next to the targets.

``--profile-dir DIR`` profiles the three children during the bursts only: with cProfile
(``--profiler cprofile``, the default; ``DIR/<role>.prof``, read it with ``python -m
pstats``) or with py-spy if it is installed (``--profiler py-spy``; ``DIR/<role>.txt``,
collapsed stacks of every thread). Profiling slows the children: CPU figures then say so.

``--tracing on`` runs the same measurement with the children tracing (OpenTelemetry, set by
its standard ``OTEL_*`` variables: ``parentbased_traceidratio`` at ``SAMPLE_RATIO`` = 0.1,
OTLP over HTTP to a local sink the script starts, ``_otlp_sink.py``); ``--tracing both``
runs it off, then on (two systems, one after the other), tags every line with
``"tracing": "off"|"on"``, counts the spans the sink received (``otlp_sink``) and prints
``tracing_cost``: the system's CPU ms per task both ways and the overhead in percent.
``--rounds N`` measures off and on N times each, alternated, and compares the median runs
(this machine's speed drifts by more than the overhead being measured).

``--observability`` measures three systems one after the other, in one run: metrics and
tracing off (``LLAMA_AGENTS_METRICS=0``), metrics on, metrics and tracing on (sampled at
``--sample-ratio``, default 0.1); every line says ``"metrics"`` and ``"tracing"``, and
``observability_cost`` gives the system's CPU ms per task each way and the overheads next to
the issue's targets (metrics under 5%, tracing at 10% under 10%).

Run it from the project root::

    .venv/bin/python benchmarks/tasks.py
    .venv/bin/python benchmarks/tasks.py --repeat 3 --tasks 500
    .venv/bin/python benchmarks/tasks.py --profile-dir /tmp/prof
    .venv/bin/python benchmarks/tasks.py --tracing both --repeat 3
    .venv/bin/python benchmarks/tasks.py --observability --repeat 3 --tasks 500

The broker is ``--url``, by default ``LLAMA_AGENTS_AMQP_URL`` or the local broker. The
script reports figures only: it never passes or fails. Everything it declared on the broker
is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import resource
import statistics
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from _common import (
    Child,
    Output,
    add_url_option,
    announce,
    broker_cpu_seconds,
    broker_pids,
    cpu_seconds,
    delete_leftovers,
    description,
    ms,
    peak_rss_mb,
    percentile,
    positive,
    py_spy_path,
    serve_control_plane,
    spawn,
    start_profiling,
    stop_child,
    stop_event,
    stop_profiling,
    wait_ready,
)

from llama_agents._runtime import run
from llama_agents.control_plane.models import TaskRecord
from llama_agents.sdk import AsyncLlamaAgentsClient

BENCH = "tasks"
#: The two pipeline steps: service name and what its component appends.
STEPS: tuple[tuple[str, str], ...] = (("step_a", " a"), ("step_b", " b"))
#: Seconds a child may take to become ready, and to exit after SIGTERM before it is killed.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: Seconds a task may take, end to end, before it counts as an error.
TASK_TIMEOUT = 120.0
#: The most connections one SDK client of the load generator holds.
POOL_SIZE = 10
#: Seconds one phase may take before it is reported as an error.
PHASE_TIMEOUT = 300.0
TARGETS: dict[str, Any] = {
    "tasks_per_s_min": 240,
    "idle_latency_ms_max": 10,
    "original_llama_agents_0_0_14": {"tasks_per_s": 8, "idle_latency_ms": 260},
}
#: The sampler's ratio when tracing (`--tracing on|both`): parentbased_traceidratio.
SAMPLE_RATIO = 0.1
SCRIPT = os.path.abspath(__file__)
OUT = Output(BENCH)
log, emit = OUT.log, OUT.emit


# -- the child roles ------------------------------------------------------------------


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
    pipeline = Pipeline.sequence(*(ServiceStep(name) for name, _ in STEPS))
    control_plane = ControlPlaneServer(
        queue, PipelineOrchestrator(pipeline), host="127.0.0.1", port=0
    )
    await serve_control_plane(
        control_plane, queue, stop, start=START_TIMEOUT, stop_timeout=STOP_TIMEOUT
    )


async def run_service(args: argparse.Namespace) -> None:
    """One `ComponentService`: consume, register, serve until SIGTERM, then clean the broker."""
    from llama_agents import ComponentService, RabbitMQMessageQueue

    stop = stop_event(args.profile)
    suffix: str = args.suffix

    async def component(text: str) -> str:
        return text + suffix

    queue = RabbitMQMessageQueue(url=args.url, exchange_name=args.exchange)
    service = ComponentService(
        component=component,
        message_queue=queue,
        description=f"appends {suffix.strip()!r}",
        service_name=args.service,
    )
    try:
        consuming = await service.launch_local()
        await service.register_to_control_plane(args.control_plane)
        announce(args.service)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({consuming, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
    finally:
        try:
            await queue.cleanup()  # stops the consumer (after its in-flight messages)
        finally:
            await queue.close()


# -- the load ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """One task seen by the client."""

    task_id: str
    latency: float
    correct: bool
    post_wall: float = 0.0
    done_wall: float = 0.0
    ended: float = 0.0


class Client:
    """The load generator: SDK clients on the control plane, used in turn.

    One client's connection pool costs CPU in proportion to its size on every request
    (httpcore checks each pooled connection), so a burst is spread over pools of at most
    `POOL_SIZE` connections instead of one pool holding a connection per task.
    """

    def __init__(self, sdks: list[AsyncLlamaAgentsClient]) -> None:
        self.sdks = sdks
        self._next = itertools.count()

    @classmethod
    async def open(cls, base_url: str, concurrency: int, stack: AsyncExitStack) -> Client:
        """Enough clients for `concurrency` tasks at once (each holds one connection)."""
        pools = math.ceil(concurrency / POOL_SIZE)
        size = math.ceil(concurrency / pools)
        sdks = []
        for _ in range(pools):
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            transport = httpx.AsyncHTTPTransport(limits=limits)
            sdk = AsyncLlamaAgentsClient(base_url, transport=transport)
            sdks.append(await stack.enter_async_context(sdk))
        return cls(sdks)

    @property
    def sdk(self) -> AsyncLlamaAgentsClient:
        """The next client in turn."""
        return self.sdks[next(self._next) % len(self.sdks)]

    async def run_task(self, text: str) -> Outcome:
        """Submit one task and wait for its result (long-polled); time it end to end."""
        sdk = self.sdk
        post_wall = time.time()
        started = time.perf_counter()
        task_id = await sdk.create_task(text)
        result = await sdk.wait_for_result(task_id, timeout=TASK_TIMEOUT)
        ended = time.perf_counter()
        expected = text + "".join(suffix for _, suffix in STEPS)
        return Outcome(
            task_id=task_id,
            latency=ended - started,
            correct=result.result == expected and not result.error,
            post_wall=post_wall,
            done_wall=time.time(),
            ended=ended,
        )


def hops(outcome: Outcome, record: TaskRecord) -> dict[str, float] | None:
    """Where one task's time went, from the control plane's timestamps (seconds)."""
    if len(record.steps) != len(STEPS):
        return None
    step_a, step_b = record.steps
    if step_a.completed_at is None or step_b.completed_at is None:
        return None
    created = record.created_at.timestamp()
    a_sent, a_done = step_a.created_at.timestamp(), step_a.completed_at.timestamp()
    b_sent, b_done = step_b.created_at.timestamp(), step_b.completed_at.timestamp()
    return {
        "post_to_task_created": created - outcome.post_wall,
        "task_created_to_step_a_decided": a_sent - created,
        "step_a_roundtrip": a_done - a_sent,
        "step_a_result_to_step_b_decided": b_sent - a_done,
        "step_b_roundtrip": b_done - b_sent,
        "step_b_result_to_client": outcome.done_wall - b_done,
    }


async def idle_phase(client: Client, count: int, warmup: int) -> dict[str, Any]:
    """Tasks one at a time: latency, and the median of every hop."""
    for index in range(warmup):
        await client.run_task(f"warmup-{index}")
    outcomes: list[Outcome] = []
    hop_lists: dict[str, list[float]] = {}
    for index in range(count):
        outcome = await client.run_task(f"idle-{index}")
        outcomes.append(outcome)
        # Outside the timed window: the task's record, for the hop breakdown.
        split = hops(outcome, await client.sdk.get_task(outcome.task_id))
        for name, seconds in (split or {}).items():
            hop_lists.setdefault(name, []).append(seconds)
    latencies = [o.latency for o in outcomes]
    return {
        "tasks": count,
        "p50_ms": ms(percentile(latencies, 0.5)),
        "p90_ms": ms(percentile(latencies, 0.9)),
        "min_ms": ms(min(latencies)),
        "mean_ms": ms(statistics.fmean(latencies)),
        "wrong": sum(not o.correct for o in outcomes),
        "hops_ms": {name: ms(statistics.median(v)) for name, v in hop_lists.items()},
    }


@dataclass
class BurstRun:
    """One burst: its figures and what each process spent on it."""

    tasks: int
    seconds: float
    latencies: list[float]
    errors: int
    wrong: int
    client_cpu_s: float
    cpu_s: dict[str, float]
    broker_cpu_s: float | None
    first_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0


async def burst_phase(
    client: Client, children: list[Child], count: int, round_number: int, broker: list[int]
) -> BurstRun:
    """`count` tasks at once, each with its long poll; CPU of every process around it."""
    before = {child.role: cpu_seconds(child.pid) for child in children}
    broker_before = broker_cpu_seconds(broker)
    client_before = time.process_time()
    started = time.perf_counter()
    results = await asyncio.gather(
        *(client.run_task(f"burst-{round_number}-{index}") for index in range(count)),
        return_exceptions=True,
    )
    client_cpu = time.process_time() - client_before
    broker_after = broker_cpu_seconds(broker)
    cpu = {child.role: cpu_seconds(child.pid) - before[child.role] for child in children}
    outcomes = [r for r in results if isinstance(r, Outcome)]
    failures = [r for r in results if not isinstance(r, Outcome)]
    last = max((o.ended for o in outcomes), default=time.perf_counter())
    return BurstRun(
        tasks=count,
        seconds=last - started,
        latencies=[o.latency for o in outcomes],
        errors=len(failures),
        wrong=sum(not o.correct for o in outcomes),
        client_cpu_s=client_cpu,
        cpu_s=cpu,
        broker_cpu_s=(
            broker_after - broker_before
            if broker_before is not None and broker_after is not None
            else None
        ),
        first_error=f"{type(failures[0]).__name__}: {failures[0]}" if failures else None,
    )


# -- the benchmark --------------------------------------------------------------------


@dataclass
class Settings:
    url: str
    tasks: int
    idle: int
    warmup: int
    repeat: int
    profile_dir: str | None
    profiler: str
    tracing: str = "off"
    sample_ratio: float = SAMPLE_RATIO
    #: The children count metrics (`LLAMA_AGENTS_METRICS`); `--observability` turns it off
    #: for its first system.
    metrics: bool = True
    observability: bool = False
    #: With `--tracing both`: how many times off and on are measured, alternated.
    rounds: int = 1


def burst_record(run: BurstRun, runs: list[BurstRun], settings: Settings) -> dict[str, Any]:
    record: dict[str, Any] = {
        "bench": BENCH,
        "case": "burst",
        "tasks": run.tasks,
        "tasks_per_s": round(run.tasks_per_s, 1),
        "seconds": round(run.seconds, 3),
        "p50_ms": ms(percentile(run.latencies, 0.5)) if run.latencies else None,
        "p99_ms": ms(percentile(run.latencies, 0.99)) if run.latencies else None,
        "errors": run.errors,
        "wrong": run.wrong,
        "repeat": settings.repeat,
        "runs_tasks_per_s": [round(r.tasks_per_s, 1) for r in runs],
    }
    if run.first_error:
        record["first_error"] = run.first_error
    return record


def cpu_record(run: BurstRun, children: list[Child], settings: Settings) -> dict[str, Any]:
    per_task = 1000.0 / run.tasks
    system = sum(run.cpu_s.values())
    processes = {
        child.role: {
            "cpu_s": round(run.cpu_s[child.role], 3),
            "cpu_ms_per_task": round(run.cpu_s[child.role] * per_task, 3),
            "peak_rss_mb": peak_rss_mb(child.pid),
        }
        for child in children
    }
    # ru_maxrss is in KiB on Linux.
    client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "bench": BENCH,
        "case": "cpu",
        "tasks": run.tasks,
        "client_cpu_s": round(run.client_cpu_s, 3),
        "client_cpu_ms_per_task": round(run.client_cpu_s * per_task, 3),
        "client_peak_rss_mb": round(client_rss, 1),
        "system_cpu_s": round(system, 3),
        "system_cpu_ms_per_task": round(system * per_task, 3),
        "processes": processes,
        "broker_cpu_s": None if run.broker_cpu_s is None else round(run.broker_cpu_s, 3),
        "broker_cpu_ms_per_task": (
            None if run.broker_cpu_s is None else round(run.broker_cpu_s * per_task, 3)
        ),
        "cores": os.cpu_count(),
        "profiled": settings.profiler if settings.profile_dir else None,
    }


async def start_system(
    settings: Settings,
    exchange: str,
    state_dir: str,
    children: list[Child],
    otel: dict[str, str] | None = None,
) -> str:
    """Start the control plane, then the services; return the control plane's URL.

    `otel`: the OpenTelemetry variables the children trace with (None: tracing off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(otel or {})
    env["LLAMA_AGENTS_METRICS"] = "1" if settings.metrics else "0"
    env["LLAMA_AGENTS_STATE_PATH"] = os.path.join(state_dir, "control_plane.sqlite3")
    common = [f"--url={settings.url}", f"--exchange={exchange}"]

    def profile_args(role: str) -> list[str]:
        if settings.profile_dir and settings.profiler == "cprofile":
            return [f"--profile={os.path.join(settings.profile_dir, role + '.prof')}"]
        return []

    extra = common + profile_args("control-plane")
    cp_env = {**env, "OTEL_SERVICE_NAME": "control_plane"} if otel else env
    control_plane = await spawn(OUT, SCRIPT, "control-plane", extra, cp_env)
    children.append(control_plane)
    base_url = await wait_ready(control_plane, START_TIMEOUT)
    log(f"control plane pid {control_plane.pid} at {base_url}")
    services: list[Child] = []
    for name, suffix in STEPS:
        extra = [*common, f"--service={name}", f"--suffix={suffix}"]
        extra += [f"--control-plane={base_url}", *profile_args(name)]
        child_env = {**env, "OTEL_SERVICE_NAME": name} if otel else env
        child = await spawn(OUT, SCRIPT, "service", extra, child_env, name=name)
        children.append(child)
        services.append(child)
    await asyncio.gather(*(wait_ready(child, START_TIMEOUT) for child in services))
    log("services pids " + ", ".join(f"{c.role} {c.pid}" for c in services))
    return base_url


async def check_ready(client: Client) -> None:
    """The control plane is healthy and lists both services."""
    if not await client.sdk.health():
        raise RuntimeError("control plane not healthy (GET /health)")
    listed = {service.service_name for service in await client.sdk.list_services()}
    missing = {name for name, _ in STEPS} - listed
    if missing:
        raise RuntimeError(f"services not registered: {sorted(missing)}")


async def measure(
    settings: Settings, client: Client, children: list[Child], mode: str
) -> dict[str, Any]:
    """The idle phase, then the bursts; prints their lines (each saying whether the system
    traced) and the summary; returns the CPU line."""

    def emit(record: dict[str, Any]) -> None:
        OUT.emit({**record, "tracing": mode, "metrics": "on" if settings.metrics else "off"})

    log(f"idle: {settings.warmup} warm-up, then {settings.idle} tasks one at a time")
    async with asyncio.timeout(PHASE_TIMEOUT):
        idle = await idle_phase(client, settings.idle, settings.warmup)
    emit({"bench": BENCH, "case": "idle", **idle})
    log(f"  p50 {idle['p50_ms']:.2f} ms, p90 {idle['p90_ms']:.2f} ms")

    broker = broker_pids()
    if not broker:
        log("the broker's beam.smp is not visible from here: no broker CPU")
    runs: list[BurstRun] = []
    if settings.profile_dir:
        await start_profiling(children, settings.profiler, settings.profile_dir)
    try:
        for round_number in range(1, settings.repeat + 1):
            log(f"burst {round_number}/{settings.repeat}: {settings.tasks} tasks at once")
            async with asyncio.timeout(PHASE_TIMEOUT):
                run = await burst_phase(client, children, settings.tasks, round_number, broker)
            runs.append(run)
            log(
                f"  {run.tasks_per_s:.1f} tasks/s, p50 {percentile(run.latencies, 0.5) * 1e3:.1f}"
                f" ms, errors {run.errors}, wrong {run.wrong}"
                if run.latencies
                else f"  every task failed: {run.first_error}"
            )
    finally:
        if settings.profile_dir:
            await stop_profiling(children, settings.profiler)
    median = sorted(runs, key=lambda r: r.tasks_per_s)[(len(runs) - 1) // 2]
    emit(burst_record(median, runs, settings))
    cpu = cpu_record(median, children, settings)
    emit(cpu)
    emit(
        {
            "bench": BENCH,
            "case": "summary",
            "tasks_per_s": round(median.tasks_per_s, 1),
            "idle_p50_ms": idle["p50_ms"],
            "targets": TARGETS,
        }
    )
    return cpu


def queues(exchange: str) -> list[str]:
    """The queues the system declares on `exchange` (deleted at the end, if left)."""
    from llama_agents.message_queues.rabbitmq.topology import dead_letter_queue_name, queue_name

    names = [queue_name(exchange, name) for name, _ in STEPS]
    names += [queue_name(exchange, "control_plane"), queue_name(exchange, "human")]
    return [*names, dead_letter_queue_name(exchange)]


async def main_async(settings: Settings, mode: str = "off") -> dict[str, Any] | None:
    """One system, measured; `mode` "on": its children trace (see `SAMPLE_RATIO`) to a sink
    started here. Returns the CPU line (None if it failed)."""
    exchange = f"bench_tasks_{uuid.uuid4().hex[:8]}"
    children: list[Child] = []
    cpu: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="bench_tasks_") as state_dir:
        try:
            async with AsyncExitStack() as stack:
                otel = None
                sink = None
                if mode == "on":
                    from _otlp_sink import running_sink

                    sink = await stack.enter_async_context(running_sink())
                    otel = sink.env(settings.sample_ratio)
                base_url = await start_system(settings, exchange, state_dir, children, otel)
                # Every burst task holds one connection for its POST, then for its long poll.
                client = await Client.open(base_url, max(settings.tasks, 10), stack)
                await check_ready(client)
                cpu = await measure(settings, client, children, mode)
                if sink is not None:
                    # Children export what they still hold on their way out: counted below.
                    for child in reversed(children):
                        await stop_child(child, STOP_TIMEOUT)
                    emit(
                        {
                            "bench": BENCH,
                            "case": "otlp_sink",
                            "tracing": mode,
                            "sample_ratio": settings.sample_ratio,
                            "exports": sink.exports,
                            "spans": sink.spans,
                        }
                    )
        except Exception as exc:
            log(f"failed: {type(exc).__name__}: {exc}")
            emit({"bench": BENCH, "case": "error", "error": f"{type(exc).__name__}: {exc}"})
        finally:
            # Services first: the control plane then deletes the exchange they no longer use.
            for child in reversed(children):
                code = await stop_child(child, STOP_TIMEOUT)
                if code not in (0, None):
                    log(f"{child.role} exited with {code}")
            with contextlib.suppress(Exception):
                leftovers = await delete_leftovers(settings.url, exchange, queues(exchange))
                if leftovers:
                    log(f"deleted what the children left: {', '.join(leftovers)}")
    if settings.profile_dir:
        log(f"profiles in {settings.profile_dir}")
    return cpu


def observability_cost(
    measured: dict[str, dict[str, Any] | None], sample_ratio: float
) -> dict[str, Any]:
    """What metrics, then metrics and tracing, cost: the system's CPU ms per task each way."""
    figures = {
        name: None if cpu is None else cpu["system_cpu_ms_per_task"]
        for name, cpu in measured.items()
    }
    base = figures["none"]
    line: dict[str, Any] = {
        "bench": BENCH,
        "case": "observability_cost",
        "sample_ratio": sample_ratio,
        "cpu_ms_per_task": figures,
        "targets_overhead_pct_max": {"metrics": 5, "metrics_and_tracing": 10},
    }
    for name in ("metrics", "metrics_and_tracing"):
        value = figures[name]
        line[f"{name}_overhead_pct"] = (
            round((value - base) / base * 100.0, 1) if base and value is not None else None
        )
    return line


def _median_run(runs: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The CPU line of the median run (by the system's CPU per task)."""
    if not runs:
        return None
    ordered = sorted(runs, key=lambda cpu: cpu["system_cpu_ms_per_task"])
    return ordered[len(ordered) // 2]


def compare(off: dict[str, Any], on: dict[str, Any], sample_ratio: float) -> dict[str, Any]:
    """Tracing's cost: the system's CPU ms per task, off and on."""
    before, after = off["system_cpu_ms_per_task"], on["system_cpu_ms_per_task"]
    return {
        "bench": BENCH,
        "case": "tracing_cost",
        "sample_ratio": sample_ratio,
        "off_cpu_ms_per_task": before,
        "on_cpu_ms_per_task": after,
        "overhead_pct": round((after - before) / before * 100.0, 1) if before else None,
        "target_overhead_pct_max": 10,
    }


def ratio(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a ratio from 0 to 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description(__doc__))
    add_url_option(parser)
    parser.add_argument("--tasks", type=positive, default=200, help="tasks in one burst")
    parser.add_argument("--idle", type=positive, default=50, help="tasks one at a time")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up tasks before idle")
    parser.add_argument("--repeat", type=positive, default=1, help="bursts (median reported)")
    parser.add_argument(
        "--tracing",
        choices=("off", "on", "both"),
        default="off",
        help="trace the children (OpenTelemetry, sampled at 10%%, to a local sink); "
        "both: measure off, then on, and print the cost",
    )
    parser.add_argument(
        "--rounds",
        type=positive,
        default=1,
        help="with --tracing both: measure off and on this many times, alternated (medians)",
    )
    parser.add_argument(
        "--observability",
        action="store_true",
        help="measure three systems in one run: metrics and tracing off, metrics on, both on; "
        "print what each costs",
    )
    parser.add_argument(
        "--sample-ratio",
        type=ratio,
        default=SAMPLE_RATIO,
        help="with --tracing: the share of tasks traced (parentbased_traceidratio)",
    )
    parser.add_argument(
        "--profile-dir", default=None, help="profile the children during the bursts, here"
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
        choices=("main", "control-plane", "service"),
        default="main",
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--exchange", help=argparse.SUPPRESS)
    parser.add_argument("--service", help=argparse.SUPPRESS)
    parser.add_argument("--suffix", help=argparse.SUPPRESS)
    parser.add_argument("--control-plane", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.role == "control-plane":
        run(run_control_plane(args))
        return
    if args.role == "service":
        run(run_service(args))
        return
    if args.profile_dir and args.profiler == "py-spy" and py_spy_path() is None:
        parser.error("--profiler py-spy: py-spy is not installed (pip install py-spy)")
    settings = Settings(
        url=args.url,
        tasks=args.tasks,
        idle=args.idle,
        warmup=max(0, args.warmup),
        repeat=args.repeat,
        profile_dir=args.profile_dir,
        profiler=args.profiler,
        tracing=args.tracing,
        sample_ratio=args.sample_ratio,
        observability=args.observability,
        rounds=args.rounds,
    )
    if settings.profile_dir:
        Path(settings.profile_dir).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if settings.observability:
        measured = {
            "none": run(main_async(replace(settings, metrics=False), "off")),
            "metrics": run(main_async(settings, "off")),
            "metrics_and_tracing": run(main_async(settings, "on")),
        }
        emit(observability_cost(measured, settings.sample_ratio))
    else:
        modes = ("off", "on") if settings.tracing == "both" else (settings.tracing,)
        # Alternated, `--rounds` times: a machine whose speed drifts favours neither.
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for _ in range(settings.rounds):
            for mode in modes:
                measured = run(main_async(settings, mode))
                if measured is not None:
                    runs[mode].append(measured)
        off, on = _median_run(runs.get("off")), _median_run(runs.get("on"))
        if off is not None and on is not None:
            emit(compare(off, on, settings.sample_ratio))
    log(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
