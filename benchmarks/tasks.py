"""Benchmark the core task loop on RabbitMQ, every part in its own OS process.

The script starts, by running itself again with ``--role`` (the roles and their start are in
``_systems.py``):

* ``--control-planes`` (1) control planes (``ControlPlaneServer`` served over HTTP on a free
  port, a ``PipelineOrchestrator`` running ``step_a`` then ``step_b``, an exchange of its own
  named ``bench_tasks_<random>``), all on one store (``--state``): a fresh SQLite file in a
  temporary folder (the default; one control plane only), or a fresh PostgreSQL schema
  ``bench_<random>`` in ``--postgres-url``, shared by the control planes as replicas and
  dropped (``DROP SCHEMA ... CASCADE``) when the system stops, whatever happened;
* ``--replicas`` (1) processes of each of the ``step_a`` and ``step_b`` ``ComponentService``
  (trivial async functions that append `` a`` and `` b``; no LLM), competing on their
  service's queue, each registered with a control plane (round robin).

The benchmark process itself is the load generator: it drives the control planes through the
project's own SDK: ``AsyncLlamaAgentsClient`` (``create_task``, then ``wait_for_result``,
which long-polls ``GET /tasks/{id}/result?wait=``), a few of them per control plane used in
turn, with connection pools of ``POOL_SIZE`` that together hold one connection per task of a
burst (httpx spends CPU on every pooled connection at each request: small pools keep the
load generator's own CPU, reported apart, low). Tasks go to the control planes round robin;
with several, every other round creates each task on one control plane and long-polls it on
the next, so half the tasks wait across replicas (``cross_p50_ms`` next to ``same_p50_ms``).
A child is ready once it printed ``READY`` on its stdout (a control plane: once it answers
HTTP; a service: once its queue is consumed and its registration was accepted); the script
then checks that every control plane is healthy and lists both services.

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
  the system's (``system_cpu_s``: every child, also given one by one, and per kind:
  ``control_planes_cpu_ms_per_task`` summed and ``per_control_plane_...``,
  ``services_cpu_ms_per_task``), CPU ms per task, peak RSS per process, the RabbitMQ
  broker's CPU when its ``beam.smp`` is visible, and with PostgreSQL, apart as well: the
  whole server's (``postgres_cpu_s``: the ``postgres`` user's processes and the backends
  that exited meanwhile; other clients of that server count too) and the backends serving
  this system's control planes (``postgres_backends_cpu_s``, matched by client port);
  ``postgres_restarted`` says the server restarted during the burst (its figures: null);
* ``summary``: tasks/s and idle p50 next to the targets.

``--profile-dir DIR`` profiles every child during the bursts only: with cProfile
(``--profiler cprofile``, the default; ``DIR/<role>.prof``, read it with ``python -m
pstats``) or with py-spy if it is installed (``--profiler py-spy``; ``DIR/<role>.txt``,
collapsed stacks of every thread). Profiling slows the children: CPU figures then say so.

``--tracing on`` runs the same measurement with the children tracing (OpenTelemetry, set by
its standard ``OTEL_*`` variables: ``parentbased_traceidratio`` at ``SAMPLE_RATIO`` = 0.1,
OTLP over HTTP to a local sink the script starts, ``_otlp_sink.py``); ``--tracing both``
runs it off, then on (two systems, one after the other), tags every line with
``"tracing": "off"|"on"``, counts the spans the sink received (``otlp_sink``) and prints
``tracing_cost``: the system's CPU ms per task both ways and the overhead in percent (of the
median runs; and ``paired_overhead_pct``, the median of each round's own overhead).
``--rounds N`` measures off and on N times each, alternated, and compares the median runs
(this machine's speed drifts by more than the overhead being measured).
``--observability`` measures three systems one after the other (``--rounds N``: N times
each, alternated), in one run: metrics and tracing off (``LLAMA_AGENTS_METRICS=0``),
metrics on, metrics and tracing on (sampled at ``--sample-ratio``, default 0.1); every line
says ``"metrics"`` and ``"tracing"``, and
``observability_cost`` gives the system's CPU ms per task each way and the overheads next to
the issue's targets (metrics under 5%, tracing at 10% under 10%).

``--side-by-side`` (with ``--tracing both`` or ``--observability``) starts the systems it
compares at once, and each of ``--rounds`` rounds sends a burst of ``--tasks`` into each at
the same time: a drift of the machine's speed, which moves alternated runs by tens of
percent here, falls on all alike. It prints each round's ``cpu`` line per system
(``"round"``, ``"side_by_side": true``; ``client_cpu_s`` is then the load generator's for all
the bursts), then the comparison, with each round's own overhead and their median
(``paired_overhead_pct``). With ``--profile-dir DIR``, each system's children are profiled
over all rounds into a folder of its own (``DIR/off``, ``DIR/on``; ``DIR/none``,
``DIR/metrics``, ``DIR/metrics_and_tracing``).

``--compare-stores`` measures three systems one after the other, in one run: one control
plane on SQLite, one on PostgreSQL, two on PostgreSQL (``--replicas``, ``--repeat`` and
``--rounds`` apply to each; with ``--rounds N`` they are measured N times, alternated);
every line says ``control_planes``, ``replicas`` and ``state``, and ``store_comparison``
gives each one's tasks/s, idle p50 (and cross-replica p50), CPU ms per task (the system's,
the control planes' summed and per control plane, the services', PostgreSQL's), medians over
the rounds, and the CPU ratios against SQLite (``system_and_postgres_backends`` adds the
backends' CPU to the system's: SQLite's work is in the control plane's own process).

Run it from the project root::

    .venv/bin/python benchmarks/tasks.py
    .venv/bin/python benchmarks/tasks.py --repeat 3 --tasks 500
    .venv/bin/python benchmarks/tasks.py --profile-dir /tmp/prof
    .venv/bin/python benchmarks/tasks.py --tracing both --repeat 3
    .venv/bin/python benchmarks/tasks.py --tracing both --side-by-side --rounds 15 --tasks 1000
    .venv/bin/python benchmarks/tasks.py --observability --side-by-side --rounds 10 --tasks 1000
    .venv/bin/python benchmarks/tasks.py --observability --repeat 3 --tasks 500
    .venv/bin/python benchmarks/tasks.py --control-planes 2 --replicas 2 --state postgres
    .venv/bin/python benchmarks/tasks.py --compare-stores --rounds 3

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
    Output,
    add_url_option,
    broker_pids,
    delete_leftovers,
    description,
    ms,
    peak_rss_mb,
    percentile,
    positive,
    py_spy_path,
    start_profiling,
    stop_child,
    stop_profiling,
)
from _comparisons import (
    Measured,
    median_run,
    observability_cost,
    store_comparison,
    tracing_cost,
)
from _systems import (
    DEFAULT_POSTGRES_URL,
    STATES,
    STEPS,
    STOP_TIMEOUT,
    CpuSpent,
    Launch,
    Layout,
    System,
    cpu_spent,
    run_control_plane,
    run_service,
    sample_cpu,
    start_system,
    state_store,
)

from llama_agents._runtime import run
from llama_agents.control_plane.models import TaskRecord
from llama_agents.sdk import AsyncLlamaAgentsClient

BENCH = "tasks"
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


# -- the load ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """One task seen by the client."""

    task_id: str
    latency: float
    correct: bool
    #: Created on one control plane, long-polled on another.
    cross: bool = False
    post_wall: float = 0.0
    done_wall: float = 0.0
    ended: float = 0.0


class Client:
    """The load generator: SDK clients on each control plane, used in turn.

    One client's connection pool costs CPU in proportion to its size on every request
    (httpcore checks each pooled connection), so a burst is spread over pools of at most
    `POOL_SIZE` connections instead of one pool holding a connection per task.

    With several control planes, tasks go to them round robin, and every other round each
    task is long-polled on the next control plane instead of the one that created it: half
    the tasks wait across replicas (`Outcome.cross`), and every control plane takes as many
    POSTs and as many long polls as the others.
    """

    def __init__(self, sdks: list[list[AsyncLlamaAgentsClient]]) -> None:
        #: Per control plane, its SDK clients.
        self.sdks = sdks
        self._turns = [itertools.count() for _ in sdks]
        self._tasks = itertools.count()

    @classmethod
    async def open(cls, urls: list[str], concurrency: int, stack: AsyncExitStack) -> Client:
        """Enough clients on each control plane for `concurrency` tasks at once (each holds
        one connection; pools open connections only as they need them)."""
        pools = math.ceil(concurrency / POOL_SIZE)
        size = math.ceil(concurrency / pools)
        sdks: list[list[AsyncLlamaAgentsClient]] = []
        for url in urls:
            own = []
            for _ in range(pools):
                limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
                transport = httpx.AsyncHTTPTransport(limits=limits)
                sdk = AsyncLlamaAgentsClient(url, transport=transport)
                own.append(await stack.enter_async_context(sdk))
            sdks.append(own)
        return cls(sdks)

    def sdk(self, control_plane: int = 0) -> AsyncLlamaAgentsClient:
        """The next client in turn on that control plane."""
        own = self.sdks[control_plane]
        return own[next(self._turns[control_plane]) % len(own)]

    def route(self) -> tuple[int, int]:
        """The next task's control planes: the one it is created on, the one it waits on."""
        number, count = next(self._tasks), len(self.sdks)
        created_on = number % count
        cross = count > 1 and (number // count) % 2 == 1
        return created_on, (created_on + 1) % count if cross else created_on

    async def run_task(self, text: str) -> Outcome:
        """Submit one task and wait for its result (long-polled); time it end to end."""
        created_on, waited_on = self.route()
        post_wall = time.time()
        started = time.perf_counter()
        task_id = await self.sdk(created_on).create_task(text)
        result = await self.sdk(waited_on).wait_for_result(task_id, timeout=TASK_TIMEOUT)
        ended = time.perf_counter()
        expected = text + "".join(suffix for _, suffix in STEPS)
        return Outcome(
            task_id=task_id,
            latency=ended - started,
            correct=result.result == expected and not result.error,
            cross=created_on != waited_on,
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


def cross_figures(outcomes: list[Outcome], prefix: str = "") -> dict[str, Any]:
    """Latency p50 of the tasks waited for where they were created, and across control
    planes (only when some were)."""
    cross = [o.latency for o in outcomes if o.cross]
    if not cross:
        return {}
    same = [o.latency for o in outcomes if not o.cross]
    return {
        f"{prefix}cross_tasks": len(cross),
        f"{prefix}same_p50_ms": ms(percentile(same, 0.5)) if same else None,
        f"{prefix}cross_p50_ms": ms(percentile(cross, 0.5)),
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
        split = hops(outcome, await client.sdk().get_task(outcome.task_id))
        for name, seconds in (split or {}).items():
            hop_lists.setdefault(name, []).append(seconds)
    latencies = [o.latency for o in outcomes]
    return {
        "tasks": count,
        "p50_ms": ms(percentile(latencies, 0.5)),
        "p90_ms": ms(percentile(latencies, 0.9)),
        "min_ms": ms(min(latencies)),
        "mean_ms": ms(statistics.fmean(latencies)),
        **cross_figures(outcomes),
        "wrong": sum(not o.correct for o in outcomes),
        "hops_ms": {name: ms(statistics.median(v)) for name, v in hop_lists.items()},
    }


@dataclass
class BurstRun:
    """One burst: its figures and what each process spent on it."""

    tasks: int
    seconds: float
    outcomes: list[Outcome]
    errors: int
    wrong: int
    client_cpu_s: float
    cpu: CpuSpent
    first_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def latencies(self) -> list[float]:
        return [o.latency for o in self.outcomes]

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0


async def burst_phase(
    client: Client, system: System, count: int, round_number: int, broker: list[int]
) -> BurstRun:
    """`count` tasks at once, each with its long poll; CPU of every process around it."""
    before = sample_cpu(system, broker)
    client_before = time.process_time()
    started = time.perf_counter()
    results = await asyncio.gather(
        *(client.run_task(f"burst-{round_number}-{index}") for index in range(count)),
        return_exceptions=True,
    )
    client_cpu = time.process_time() - client_before
    spent = cpu_spent(before, sample_cpu(system, broker))
    outcomes = [r for r in results if isinstance(r, Outcome)]
    failures = [r for r in results if not isinstance(r, Outcome)]
    last = max((o.ended for o in outcomes), default=time.perf_counter())
    return BurstRun(
        tasks=count,
        seconds=last - started,
        outcomes=outcomes,
        errors=len(failures),
        wrong=sum(not o.correct for o in outcomes),
        client_cpu_s=client_cpu,
        cpu=spent,
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
    #: With `--tracing both` or `--compare-stores`: how many times each system is measured,
    #: alternated.
    rounds: int = 1
    #: With `--tracing both` or `--observability`: the systems run at the same time.
    side_by_side: bool = False
    #: How many control planes and service replicas, on which store.
    layout: Layout = field(default_factory=Layout)
    compare_stores: bool = False


def burst_record(run: BurstRun, runs: list[BurstRun], settings: Settings) -> dict[str, Any]:
    record: dict[str, Any] = {
        "bench": BENCH,
        "case": "burst",
        "tasks": run.tasks,
        "tasks_per_s": round(run.tasks_per_s, 1),
        "seconds": round(run.seconds, 3),
        "p50_ms": ms(percentile(run.latencies, 0.5)) if run.latencies else None,
        "p99_ms": ms(percentile(run.latencies, 0.99)) if run.latencies else None,
        **cross_figures(run.outcomes),
        "errors": run.errors,
        "wrong": run.wrong,
        "repeat": settings.repeat,
        "runs_tasks_per_s": [round(r.tasks_per_s, 1) for r in runs],
    }
    if run.first_error:
        record["first_error"] = run.first_error
    return record


def cpu_record(run: BurstRun, system: System, settings: Settings) -> dict[str, Any]:
    """What each process spent on the burst: in all, per kind, per control plane, per task."""
    per_task = 1000.0 / run.tasks
    spent = run.cpu.processes

    def seconds(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    def per(value: float | None) -> float | None:
        return None if value is None else round(value * per_task, 3)

    control_planes = sum(spent[child.role] for child in system.control_planes)
    services = sum(spent[child.role] for child in system.services)
    total = control_planes + services
    processes = {
        child.role: {
            "cpu_s": seconds(spent[child.role]),
            "cpu_ms_per_task": per(spent[child.role]),
            "main_thread_cpu_ms_per_task": per(run.cpu.main_threads[child.role]),
            "peak_rss_mb": peak_rss_mb(child.pid),
        }
        for child in system.children
    }
    # ru_maxrss is in KiB on Linux.
    client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    backends = run.cpu.postgres_backends
    return {
        "bench": BENCH,
        "case": "cpu",
        "tasks": run.tasks,
        "client_cpu_s": seconds(run.client_cpu_s),
        "client_cpu_ms_per_task": per(run.client_cpu_s),
        "client_peak_rss_mb": round(client_rss, 1),
        "system_cpu_s": seconds(total),
        "system_cpu_ms_per_task": per(total),
        "control_planes_cpu_ms_per_task": per(control_planes),
        "per_control_plane_cpu_ms_per_task": per(control_planes / len(system.control_planes)),
        "services_cpu_ms_per_task": per(services),
        "processes": processes,
        "broker_cpu_s": seconds(run.cpu.broker),
        "broker_cpu_ms_per_task": per(run.cpu.broker),
        "postgres_cpu_s": seconds(run.cpu.postgres),
        "postgres_cpu_ms_per_task": per(run.cpu.postgres),
        "postgres_backends_cpu_s": seconds(backends),
        "postgres_backends_cpu_ms_per_task": per(backends),
        "system_and_postgres_backends_cpu_ms_per_task": (
            None if backends is None else per(total + backends)
        ),
        "postgres_restarted": run.cpu.postgres_restarted,
        "cores": os.cpu_count(),
        "profiled": settings.profiler if settings.profile_dir else None,
    }


def launch(
    settings: Settings, exchange: str, state_url: str, otel: dict[str, str] | None
) -> Launch:
    """What the children start with; `otel`: the OpenTelemetry variables (None: no tracing)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["LLAMA_AGENTS_METRICS"] = "1" if settings.metrics else "0"

    def profile_args(role: str) -> list[str]:
        if settings.profile_dir and settings.profiler == "cprofile":
            return [f"--profile={os.path.join(settings.profile_dir, role + '.prof')}"]
        return []

    return Launch(settings.url, exchange, state_url, env, profile_args, otel)


async def check_ready(client: Client) -> None:
    """Every control plane is healthy and lists both services (wherever they registered)."""
    for index in range(len(client.sdks)):
        sdk = client.sdk(index)
        if not await sdk.health():
            raise RuntimeError(f"control plane {sdk.control_plane_url} not healthy")
        listed = {service.service_name for service in await sdk.list_services()}
        missing = {name for name, _ in STEPS} - listed
        if missing:
            raise RuntimeError(
                f"services not registered on {sdk.control_plane_url}: {sorted(missing)}"
            )


def tags(settings: Settings, mode: str) -> dict[str, Any]:
    """What every line of one system says about it."""
    metrics = "on" if settings.metrics else "off"
    return {"tracing": mode, "metrics": metrics, **settings.layout.tags()}


async def measure(settings: Settings, client: Client, system: System, mode: str) -> Measured:
    """The idle phase, then the bursts; prints their lines (each saying how the system was
    made) and the summary."""

    def emit(record: dict[str, Any]) -> None:
        OUT.emit({**record, **tags(settings, mode)})

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
        await start_profiling(system.children, settings.profiler, settings.profile_dir)
    try:
        for round_number in range(1, settings.repeat + 1):
            log(f"burst {round_number}/{settings.repeat}: {settings.tasks} tasks at once")
            async with asyncio.timeout(PHASE_TIMEOUT):
                run = await burst_phase(client, system, settings.tasks, round_number, broker)
            runs.append(run)
            log(
                f"  {run.tasks_per_s:.1f} tasks/s, p50 {percentile(run.latencies, 0.5) * 1e3:.1f}"
                f" ms, errors {run.errors}, wrong {run.wrong}"
                if run.latencies
                else f"  every task failed: {run.first_error}"
            )
    finally:
        if settings.profile_dir:
            await stop_profiling(system.children, settings.profiler)
    median = sorted(runs, key=lambda r: r.tasks_per_s)[(len(runs) - 1) // 2]
    emit(burst_record(median, runs, settings))
    cpu = cpu_record(median, system, settings)
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
    return Measured(cpu, median.tasks_per_s, idle["p50_ms"], idle.get("cross_p50_ms"))


def queues(exchange: str) -> list[str]:
    """The queues the system declares on `exchange` (deleted at the end, if left)."""
    from llama_agents.message_queues.rabbitmq.topology import dead_letter_queue_name, queue_name

    names = [queue_name(exchange, name) for name, _ in STEPS]
    names += [queue_name(exchange, "control_plane"), queue_name(exchange, "human")]
    return [*names, dead_letter_queue_name(exchange)]


async def stop_system(system: System, url: str, exchange: str) -> None:
    """Stop every child, services first (the control planes then delete the exchange they
    no longer use), and delete what they left on the broker."""
    for child in reversed(system.children):
        code = await stop_child(child, STOP_TIMEOUT)
        if code not in (0, None):
            log(f"{child.role} exited with {code}")
    with contextlib.suppress(Exception):
        leftovers = await delete_leftovers(url, exchange, queues(exchange))
        if leftovers:
            log(f"deleted what the children left: {', '.join(leftovers)}")


@dataclass
class OpenSystem:
    """A started system, its load generator's clients, and its span sink when it traces."""

    system: System
    client: Client
    mode: str
    sink: Any = None


async def open_system(settings: Settings, mode: str, stack: AsyncExitStack) -> OpenSystem:
    """Start one system on an exchange and a store of its own, ready to measure; `mode` "on":
    its children trace (see `SAMPLE_RATIO`) to a sink started here. `stack` stops it all."""
    exchange = f"bench_tasks_{uuid.uuid4().hex[:8]}"
    layout = settings.layout
    log(
        f"system: {layout.control_planes} control plane(s) on {layout.state}, "
        f"{layout.replicas} replica(s) of each service, tracing {mode}"
    )
    system = System(layout)
    state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_tasks_"))
    state_url = await stack.enter_async_context(state_store(layout, state_dir, log))
    otel = None
    sink = None
    if mode == "on":
        from _otlp_sink import running_sink

        sink = await stack.enter_async_context(running_sink())
        otel = sink.env(settings.sample_ratio)
    stack.push_async_callback(stop_system, system, settings.url, exchange)
    await start_system(SCRIPT, OUT, launch(settings, exchange, state_url, otel), system)
    # Every burst task holds one connection for its POST, then for its long poll.
    client = await Client.open(system.urls, max(settings.tasks, 10), stack)
    await check_ready(client)
    return OpenSystem(system, client, mode, sink)


async def count_spans(settings: Settings, opened: OpenSystem) -> None:
    """Stop a tracing system's children (they export what they hold on their way out), then
    print how many spans its sink received."""
    if opened.sink is None:
        return
    for child in reversed(opened.system.children):
        await stop_child(child, STOP_TIMEOUT)
    OUT.emit(
        {
            "bench": BENCH,
            "case": "otlp_sink",
            **tags(settings, opened.mode),
            "sample_ratio": settings.sample_ratio,
            "exports": opened.sink.exports,
            "spans": opened.sink.spans,
        }
    )


async def main_async(settings: Settings, mode: str = "off") -> Measured | None:
    """One system, measured (see `open_system`). Returns its figures (None if it failed)."""
    measured: Measured | None = None
    try:
        # Unwound in reverse: the SDK clients, the children, the sink, the store, the folder.
        async with AsyncExitStack() as stack:
            opened = await open_system(settings, mode, stack)
            measured = await measure(settings, opened.client, opened.system, mode)
            await count_spans(settings, opened)
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        error = f"{type(exc).__name__}: {exc}"
        OUT.emit({"bench": BENCH, "case": "error", **tags(settings, mode), "error": error})
    if settings.profile_dir:
        log(f"profiles in {settings.profile_dir}")
    return measured


async def side_by_side(
    settings: Settings, systems: list[tuple[str, Settings, str]]
) -> dict[str, list[dict[str, Any]]]:
    """The `(name, settings, tracing mode)` systems running at the same time: their idle
    phases one after the other, then each round one burst of `settings.tasks` into each,
    all at once, so a drift of the machine's speed falls on all alike. Returns each
    system's CPU lines, one per round."""
    lines: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in systems}

    def own(name: str, system_settings: Settings) -> Settings:
        """With --profile-dir, each system's profiles go in a folder of its own."""
        if not settings.profile_dir:
            return system_settings
        folder = os.path.join(settings.profile_dir, name)
        Path(folder).mkdir(parents=True, exist_ok=True)
        return replace(system_settings, profile_dir=folder)

    async with AsyncExitStack() as stack:
        started = []
        for name, system_settings, mode in systems:
            mine = own(name, system_settings)
            started.append((name, mine, await open_system(mine, mode, stack)))
        for name, system_settings, opened in started:
            log(f"{name}: idle, {settings.warmup} warm-up, {settings.idle} tasks")
            async with asyncio.timeout(PHASE_TIMEOUT):
                idle = await idle_phase(opened.client, settings.idle, settings.warmup)
            emit({"bench": BENCH, "case": "idle", **idle, **tags(system_settings, opened.mode)})
        broker = broker_pids()
        for _, system_settings, opened in started:
            if system_settings.profile_dir:
                await start_profiling(
                    opened.system.children, settings.profiler, system_settings.profile_dir
                )
        for round_number in range(1, settings.rounds + 1):
            log(f"round {round_number}/{settings.rounds}: {settings.tasks} tasks into each")
            async with asyncio.timeout(PHASE_TIMEOUT):
                bursts = await asyncio.gather(
                    *(
                        burst_phase(o.client, o.system, settings.tasks, round_number, broker)
                        for _, _, o in started
                    )
                )
            figures = []
            for (name, system_settings, opened), burst in zip(started, bursts, strict=True):
                line = {
                    **cpu_record(burst, opened.system, system_settings),
                    **tags(system_settings, opened.mode),
                    "round": round_number,
                    "side_by_side": True,
                    "errors": burst.errors,
                    "wrong": burst.wrong,
                    "tasks_per_s": round(burst.tasks_per_s, 1),
                }
                emit(line)
                lines[name].append(line)
                figures.append(f"{name} {line['system_cpu_ms_per_task']:.2f}")
            log(f"  system CPU ms per task: {', '.join(figures)}")
        for _, system_settings, opened in started:
            if system_settings.profile_dir:
                await stop_profiling(opened.system.children, settings.profiler)
        for _, system_settings, opened in started:
            await count_spans(system_settings, opened)
    return lines


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
        "--control-planes",
        type=positive,
        default=None,
        help="control-plane processes on one store (default 1; more need --state postgres)",
    )
    parser.add_argument(
        "--replicas", type=positive, default=1, help="processes of each step service"
    )
    parser.add_argument(
        "--state",
        choices=STATES,
        default=None,
        help="the control planes' store: a SQLite file (default) or a fresh PostgreSQL schema",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help=f"with --state postgres: the database (default {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument(
        "--compare-stores",
        action="store_true",
        help="measure 1 control plane on SQLite, 1 on PostgreSQL, 2 on PostgreSQL; "
        "print what each costs",
    )
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
        help="with --tracing both, --observability or --compare-stores: measure each system "
        "this many times, alternated, or side by side with --side-by-side (medians)",
    )
    parser.add_argument(
        "--observability",
        action="store_true",
        help="measure three systems in one run: metrics and tracing off, metrics on, both on; "
        "print what each costs",
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="with --tracing both or --observability: run the systems at the same time, "
        "each round a burst into each at once (a drift of the machine's speed falls on all)",
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
    parser.add_argument("--state-url", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    return parser


def layout_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Layout:
    """The system `--control-planes`, `--replicas` and `--state` ask for (refused where
    they cannot go together)."""
    exclusive = [
        name
        for name, given in (
            ("--compare-stores", args.compare_stores),
            ("--observability", args.observability),
            ("--tracing both", args.tracing == "both"),
        )
        if given
    ]
    if len(exclusive) > 1:
        parser.error(f"{' and '.join(exclusive)} cannot go together: choose one")
    if args.side_by_side and not (args.tracing == "both" or args.observability):
        parser.error("--side-by-side compares systems: give it --tracing both or --observability")
    if args.compare_stores and (args.control_planes is not None or args.state is not None):
        parser.error("--compare-stores chooses the stores and control planes itself")
    layout = Layout(
        control_planes=args.control_planes or 1,
        replicas=args.replicas,
        state=args.state or "sqlite",
        postgres_url=args.postgres_url,
    )
    if layout.control_planes > 1 and layout.state != "postgres":
        parser.error(
            f"--control-planes {layout.control_planes} needs --state postgres: control planes "
            "share one store, and a SQLite file belongs to one process"
        )
    return layout


def run_alternated(
    settings: Settings, systems: list[tuple[str, Settings, str]]
) -> dict[str, list[Measured]]:
    """Measure each `(name, settings, tracing mode)` system `settings.rounds` times, one
    after the other, alternated: a machine whose speed drifts favours none of them."""
    runs: dict[str, list[Measured]] = {name: [] for name, _, _ in systems}
    for _ in range(settings.rounds):
        for name, system_settings, mode in systems:
            measured = run(main_async(system_settings, mode))
            if measured is not None:
                runs[name].append(measured)
    return runs


def measure_all(
    settings: Settings, systems: list[tuple[str, Settings, str]]
) -> dict[str, list[dict[str, Any]]]:
    """Each system's CPU lines, one per round: side by side (`--side-by-side`) or one
    system after the other, alternated."""
    if settings.side_by_side:
        try:
            return run(side_by_side(settings, systems))
        except Exception as exc:  # reported as one line, as a system measured alone is
            log(f"failed: {type(exc).__name__}: {exc}")
            error = f"{type(exc).__name__}: {exc}"
            emit({"bench": BENCH, "case": "error", "side_by_side": True, "error": error})
            return {}
    runs = run_alternated(settings, systems)
    return {name: [m.cpu for m in measured] for name, measured in runs.items()}


def side_tag(settings: Settings) -> dict[str, Any]:
    return {"side_by_side": True} if settings.side_by_side else {}


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
        side_by_side=args.side_by_side,
        rounds=args.rounds,
        layout=layout_from(parser, args),
        compare_stores=args.compare_stores,
    )
    if settings.profile_dir:
        Path(settings.profile_dir).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if settings.observability:
        systems = [
            ("none", replace(settings, metrics=False), "off"),
            ("metrics", settings, "off"),
            ("metrics_and_tracing", settings, "on"),
        ]
        cpu_runs = measure_all(settings, systems)
        medians = {name: median_run(lines) for name, lines in cpu_runs.items()}
        line = observability_cost(medians, settings.sample_ratio, cpu_runs)
        emit({"bench": BENCH, **line, **side_tag(settings)})
    elif settings.compare_stores:
        base = settings.layout
        layouts = [
            replace(base, control_planes=1, state="sqlite"),
            replace(base, control_planes=1, state="postgres"),
            replace(base, control_planes=2, state="postgres"),
        ]
        systems = [(lay.name, replace(settings, layout=lay), settings.tracing) for lay in layouts]
        runs = run_alternated(settings, systems)
        header = {
            "tasks": settings.tasks,
            "repeat": settings.repeat,
            "rounds": settings.rounds,
            "tracing": settings.tracing,
        }
        emit({"bench": BENCH, **store_comparison(layouts, runs, header)})
    else:
        modes = ("off", "on") if settings.tracing == "both" else (settings.tracing,)
        cpu_runs = measure_all(settings, [(mode, settings, mode) for mode in modes])
        off = median_run(cpu_runs.get("off"))
        on = median_run(cpu_runs.get("on"))
        if off is not None and on is not None:
            pairs = list(zip(cpu_runs["off"], cpu_runs["on"], strict=False))
            line = tracing_cost(off, on, settings.sample_ratio, pairs)
            emit({"bench": BENCH, **line, **side_tag(settings)})
    log(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
