"""Benchmark the core task loop on RabbitMQ, every part in its own OS process.

The script starts, by running itself again with ``--role``:

* the control plane (``ControlPlaneServer`` served over HTTP on a free port, a
  ``PipelineOrchestrator`` running ``step_a`` then ``step_b``, a fresh SQLite state file in a
  temporary folder, an exchange of its own named ``bench_tasks_<random>``);
* the ``step_a`` and ``step_b`` ``ComponentService`` processes (trivial async functions that
  append `` a`` and `` b``; no LLM), each registered with the control plane.

The benchmark process itself is the load generator: it talks to the control plane's HTTP API
through ONE shared ``aiohttp.ClientSession`` (``POST /tasks``, then the long-polling
``GET /tasks/{id}/result?wait=``). A child is ready once it printed ``READY`` on its stdout
(the control plane: once it answers HTTP; a service: once its queue is consumed and its
registration was accepted); the script then checks ``GET /health`` and ``GET /services``.

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

Run it from the project root::

    .venv/bin/python benchmarks/tasks.py
    .venv/bin/python benchmarks/tasks.py --repeat 3 --tasks 500
    .venv/bin/python benchmarks/tasks.py --profile-dir /tmp/prof

The broker is ``--url``, by default ``LLAMA_AGENTS_AMQP_URL`` or the local broker. The
script reports figures only: it never passes or fails. Everything it declared on the broker
is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from llama_agents._runtime import run

BENCH = "tasks"
DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
READY = "READY"
#: The two pipeline steps: service name and what its component appends.
STEPS: tuple[tuple[str, str], ...] = (("step_a", " a"), ("step_b", " b"))
#: Seconds a child may take to become ready, and to exit after SIGTERM before it is killed.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: The long poll's `wait` (seconds); a 202 answer is polled again.
POLL_WAIT = 30.0
#: Seconds one phase may take before it is reported as an error.
PHASE_TIMEOUT = 300.0
TARGETS: dict[str, Any] = {
    "tasks_per_s_min": 240,
    "idle_latency_ms_max": 10,
    "original_llama_agents_0_0_14": {"tasks_per_s": 8, "idle_latency_ms": 260},
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
SCRIPT = os.path.abspath(__file__)


def log(text: str) -> None:
    print(f"[{BENCH}] {text}", file=sys.stderr, flush=True)


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values`."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


# -- /proc ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: count fields after its closing paren.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (`VmHWM`) in MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return None


def broker_pids() -> list[int]:
    """Pids of the RabbitMQ broker (Erlang's `beam.smp`) visible from here."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() == "beam.smp":
                pids.append(int(entry.name))
    return pids


def broker_cpu_seconds(pids: list[int]) -> float | None:
    try:
        return sum(cpu_seconds(pid) for pid in pids) if pids else None
    except OSError:
        return None


# -- the child roles ------------------------------------------------------------------


def announce(text: str = "") -> None:
    """Tell the parent this child is ready (the one line a child writes on stdout)."""
    print(f"{READY} {text}".rstrip(), flush=True)


def stop_event(profile: str | None) -> asyncio.Event:
    """An event set by SIGTERM or SIGINT; with `profile`, SIGUSR1/SIGUSR2 start/stop cProfile.

    Each SIGUSR2 writes the profile gathered so far (over every SIGUSR1..SIGUSR2 window).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()

        def finish() -> None:
            profiler.disable()
            profiler.dump_stats(profile)

        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, finish)
    return stop


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
    serving = asyncio.create_task(control_plane.launch_server(), name="control-plane")
    try:
        ready = asyncio.ensure_future(control_plane.wait_until_serving(START_TIMEOUT))
        await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            ready.cancel()
            await serving  # raises what stopped it
            return
        announce(await ready)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
    finally:
        # close() stops the HTTP server, which ends launch_server (which closes again).
        await control_plane.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(serving, STOP_TIMEOUT)
        try:
            await queue.cleanup()
        finally:
            await queue.close()


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


# -- the children, seen from the benchmark --------------------------------------------


@dataclass
class Child:
    """One child process: its role, its process, and what it said once ready."""

    role: str
    process: asyncio.subprocess.Process
    ready_text: str = ""
    drain: asyncio.Task[None] | None = None
    profiler: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


async def spawn(role: str, extra: list[str], env: dict[str, str], name: str | None = None) -> Child:
    """Start this script as `role` (called `name`); stderr is ours, stdout read for READY."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--role",
        role,
        *extra,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    return Child(role=name or role, process=process)


async def wait_ready(child: Child, timeout: float = START_TIMEOUT) -> str:
    """Read `child`'s stdout until its READY line; fail if it exits first."""
    stdout = child.process.stdout
    assert stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            line = (await stdout.readline()).decode().strip()
            if not line:
                code = await child.process.wait()
                raise RuntimeError(f"{child.role} exited with {code} before it was ready")
            if line.split(" ", 1)[0] == READY:
                child.ready_text = line[len(READY) :].strip()
                child.drain = asyncio.create_task(forward(child))
                return child.ready_text
            log(f"{child.role}: {line}")


async def forward(child: Child) -> None:
    """Pass on whatever else the child prints on stdout (so its pipe never fills)."""
    assert child.process.stdout is not None
    async for raw in child.process.stdout:
        log(f"{child.role}: {raw.decode().rstrip()}")


async def stop_child(child: Child) -> int | None:
    """SIGTERM, wait; SIGKILL if it hangs. Returns the exit code."""
    process = child.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log(f"{child.role} did not exit within {STOP_TIMEOUT}s of SIGTERM; killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if child.drain is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(child.drain, 5.0)
    return process.returncode


async def delete_leftovers(url: str, exchange: str) -> list[str]:
    """Delete what the children should have deleted (if they did not); return its names."""
    import aio_pika
    from aio_pika.exceptions import ChannelClosed

    from llama_agents.message_queues.rabbitmq.topology import dead_letter_queue_name, queue_name

    names = [queue_name(exchange, name) for name, _ in STEPS]
    names += [queue_name(exchange, "control_plane"), queue_name(exchange, "human")]
    names.append(dead_letter_queue_name(exchange))
    removed: list[str] = []
    connection = await aio_pika.connect(url, timeout=10.0)
    try:
        for name in names:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
            except ChannelClosed:
                continue  # not there: the channel closed with NOT_FOUND
            await channel.queue_delete(name)
            removed.append(name)
            await channel.close()
        channel = await connection.channel()
        try:
            await channel.declare_exchange(exchange, passive=True)
        except ChannelClosed:
            pass
        else:
            await channel.exchange_delete(exchange)
            removed.append(f"exchange {exchange}")
            await channel.close()
    finally:
        await connection.close()
    return removed


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
    """The load generator: one aiohttp session on the control plane's API."""

    def __init__(self, session: Any, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def run_task(self, text: str) -> Outcome:
        """Submit one task and long-poll its result; time it end to end."""
        post_wall = time.time()
        started = time.perf_counter()
        async with self.session.post(f"{self.base_url}/tasks", json={"input": text}) as response:
            if response.status != 200:
                raise RuntimeError(f"POST /tasks: {response.status} {await response.text()}")
            task_id = (await response.json())["task_id"]
        url = f"{self.base_url}/tasks/{task_id}/result"
        while True:
            async with self.session.get(url, params={"wait": str(POLL_WAIT)}) as response:
                if response.status == 200:
                    body = await response.json()
                    break
                if response.status != 202:
                    raise RuntimeError(f"GET result: {response.status} {await response.text()}")
                await response.read()
        ended = time.perf_counter()
        expected = text + "".join(suffix for _, suffix in STEPS)
        correct = body.get("result") == expected and not body.get("error")
        return Outcome(
            task_id=task_id,
            latency=ended - started,
            correct=correct,
            post_wall=post_wall,
            done_wall=time.time(),
            ended=ended,
        )

    async def get_json(self, path: str) -> Any:
        async with self.session.get(f"{self.base_url}{path}") as response:
            response.raise_for_status()
            return await response.json()


def _ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


def hops(outcome: Outcome, record: dict[str, Any]) -> dict[str, float] | None:
    """Where one task's time went, from the control plane's timestamps (seconds)."""
    steps = record.get("steps") or []
    if len(steps) != len(STEPS):
        return None
    created = _ts(record["created_at"])
    a_sent, a_done = _ts(steps[0]["created_at"]), _ts(steps[0]["completed_at"])
    b_sent, b_done = _ts(steps[1]["created_at"]), _ts(steps[1]["completed_at"])
    if None in (created, a_sent, a_done, b_sent, b_done):
        return None
    assert created and a_sent and a_done and b_sent and b_done
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
        split = hops(outcome, await client.get_json(f"/tasks/{outcome.task_id}"))
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


# -- profiling ------------------------------------------------------------------------


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def start_profiling(children: list[Child], settings: Settings) -> None:
    if settings.profile_dir is None:
        return
    if settings.profiler == "cprofile":
        for child in children:
            child.process.send_signal(signal.SIGUSR1)
        return
    binary = py_spy_path()
    assert binary is not None
    for child in children:
        output = Path(settings.profile_dir) / f"{child.role}.txt"
        child.profiler = await asyncio.create_subprocess_exec(
            binary,
            "record",
            "--pid",
            str(child.pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--output",
            str(output),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    # py-spy attaches in a few ms; let it catch the start of the burst.
    await asyncio.sleep(0.5)


async def stop_profiling(children: list[Child], settings: Settings) -> None:
    if settings.profile_dir is None:
        return
    for child in children:
        if settings.profiler == "cprofile":
            child.process.send_signal(signal.SIGUSR2)
        elif child.profiler is not None:
            with contextlib.suppress(ProcessLookupError):
                child.profiler.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.profiler.wait(), 30.0)
            child.profiler = None


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
    settings: Settings, exchange: str, state_dir: str, children: list[Child]
) -> str:
    """Start the control plane, then the services; return the control plane's URL."""
    env = dict(os.environ)
    env["LLAMA_AGENTS_STATE_PATH"] = os.path.join(state_dir, "control_plane.sqlite3")
    common = [f"--url={settings.url}", f"--exchange={exchange}"]

    def profile_args(role: str) -> list[str]:
        if settings.profile_dir and settings.profiler == "cprofile":
            return [f"--profile={os.path.join(settings.profile_dir, role + '.prof')}"]
        return []

    control_plane = await spawn("control-plane", common + profile_args("control-plane"), env=env)
    children.append(control_plane)
    base_url = await wait_ready(control_plane)
    log(f"control plane pid {control_plane.pid} at {base_url}")
    services: list[Child] = []
    for name, suffix in STEPS:
        extra = [*common, f"--service={name}", f"--suffix={suffix}"]
        extra += [f"--control-plane={base_url}", *profile_args(name)]
        child = await spawn("service", extra, env=env, name=name)
        children.append(child)
        services.append(child)
    await asyncio.gather(*(wait_ready(child) for child in services))
    log("services pids " + ", ".join(f"{c.role} {c.pid}" for c in services))
    return base_url


async def check_ready(client: Client) -> None:
    """The control plane answers /health and lists both services."""
    health = await client.get_json("/health")
    if health.get("status") != "ok":
        raise RuntimeError(f"control plane not healthy: {health}")
    listed = {service["service_name"] for service in await client.get_json("/services")}
    missing = {name for name, _ in STEPS} - listed
    if missing:
        raise RuntimeError(f"services not registered: {sorted(missing)}")


async def measure(settings: Settings, client: Client, children: list[Child]) -> None:
    """The idle phase, then the bursts; prints their lines and the summary."""
    log(f"idle: {settings.warmup} warm-up, then {settings.idle} tasks one at a time")
    async with asyncio.timeout(PHASE_TIMEOUT):
        idle = await idle_phase(client, settings.idle, settings.warmup)
    emit({"bench": BENCH, "case": "idle", **idle})
    log(f"  p50 {idle['p50_ms']:.2f} ms, p90 {idle['p90_ms']:.2f} ms")

    broker = broker_pids()
    if not broker:
        log("the broker's beam.smp is not visible from here: no broker CPU")
    runs: list[BurstRun] = []
    await start_profiling(children, settings)
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
        await stop_profiling(children, settings)
    median = sorted(runs, key=lambda r: r.tasks_per_s)[(len(runs) - 1) // 2]
    emit(burst_record(median, runs, settings))
    emit(cpu_record(median, children, settings))
    emit(
        {
            "bench": BENCH,
            "case": "summary",
            "tasks_per_s": round(median.tasks_per_s, 1),
            "idle_p50_ms": idle["p50_ms"],
            "targets": TARGETS,
        }
    )


async def main_async(settings: Settings) -> None:
    import aiohttp

    exchange = f"bench_tasks_{uuid.uuid4().hex[:8]}"
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="bench_tasks_") as state_dir:
        try:
            base_url = await start_system(settings, exchange, state_dir, children)
            # Every burst task holds one connection for its POST, then for its long poll.
            connector = aiohttp.TCPConnector(limit=max(settings.tasks, 10), limit_per_host=0)
            timeout = aiohttp.ClientTimeout(total=POLL_WAIT + 30.0)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                client = Client(session, base_url)
                await check_ready(client)
                await measure(settings, client, children)
        except Exception as exc:
            log(f"failed: {type(exc).__name__}: {exc}")
            emit({"bench": BENCH, "case": "error", "error": f"{type(exc).__name__}: {exc}"})
        finally:
            # Services first: the control plane then deletes the exchange they no longer use.
            for child in reversed(children):
                code = await stop_child(child)
                if code not in (0, None):
                    log(f"{child.role} exited with {code}")
            with contextlib.suppress(Exception):
                leftovers = await delete_leftovers(settings.url, exchange)
                if leftovers:
                    log(f"deleted what the children left: {', '.join(leftovers)}")
    if settings.profile_dir:
        log(f"profiles in {settings.profile_dir}")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--url",
        default=os.environ.get("LLAMA_AGENTS_AMQP_URL", DEFAULT_URL),
        help="AMQP URL of the broker (default: $LLAMA_AGENTS_AMQP_URL or the local broker)",
    )
    parser.add_argument("--tasks", type=positive, default=200, help="tasks in one burst")
    parser.add_argument("--idle", type=positive, default=50, help="tasks one at a time")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up tasks before idle")
    parser.add_argument("--repeat", type=positive, default=1, help="bursts (median reported)")
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
    )
    if settings.profile_dir:
        Path(settings.profile_dir).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run(main_async(settings))
    log(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
