"""The system `tasks.py` measures: its processes, the store they share, and their CPU.

`tasks.py` runs itself again with ``--role control-plane`` or ``--role service``: the two
roles are here (`run_control_plane`, `run_service`), and what the parent does with them:

* `state_store` gives the control planes their store: a SQLite file in a temporary folder,
  or a fresh PostgreSQL schema ``bench_<random>`` (created by the first control plane,
  dropped with ``DROP SCHEMA ... CASCADE`` when the system is done, whatever happened);
* `start_system` starts ``Layout.control_planes`` control planes on that store (the first
  alone, since it creates the schema, then the others), then ``Layout.replicas`` processes
  of each step service, registered round robin with the control planes;
* `sample_cpu` reads, from /proc, the CPU of every child, of the broker, of the PostgreSQL
  server (all of it, exited backends included) and of the backends serving this system's
  control planes (found by their connections' client ports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from _common import (
    Child,
    Output,
    announce,
    cpu_seconds,
    main_thread_cpu_seconds,
    postgres_backends_of,
    postgres_cpu_seconds,
    serve_control_plane,
    spawn,
    stop_event,
    wait_ready,
)

from llama_agents._runtime import tune_gc_for_serving

#: The two pipeline steps: service name and what its component appends.
STEPS: tuple[tuple[str, str], ...] = (("step_a", " a"), ("step_b", " b"))
#: Seconds a child may take to become ready, and to exit after SIGTERM before it is killed.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STATES = ("sqlite", "postgres")


# -- the child roles ------------------------------------------------------------------


async def run_control_plane(args: argparse.Namespace) -> None:
    """A control plane on the store `--state-url`: serve HTTP on a free port until SIGTERM,
    then clean the broker."""
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
        queue,
        PipelineOrchestrator(pipeline),
        host="127.0.0.1",
        port=0,
        state_store=args.state_url,
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
        tune_gc_for_serving()  # as `llama-agents serve` does once ready
        announce(args.service)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({consuming, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
    finally:
        try:
            await queue.cleanup()  # stops the consumer (after its in-flight messages)
        finally:
            await queue.close()


# -- the store --------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How many processes of each kind, and the store the control planes share."""

    control_planes: int = 1
    replicas: int = 1
    state: str = "sqlite"
    postgres_url: str = DEFAULT_POSTGRES_URL

    @property
    def name(self) -> str:
        """E.g. ``2cp_postgres`` (``store_comparison`` keys its figures by this)."""
        return f"{self.control_planes}cp_{self.state}"

    def tags(self) -> dict[str, Any]:
        """What every JSON line of this system says about it."""
        return {
            "control_planes": self.control_planes,
            "replicas": self.replicas,
            "state": self.state,
        }

    @property
    def postgres_port(self) -> int:
        return urlsplit(self.postgres_url).port or 5432


def with_schema(url: str, schema: str) -> str:
    """`url` with `?schema=<schema>` (a state URL: the store's own parameter)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


async def _postgres(url: str) -> Any:
    """A plain asyncpg connection to the server (the benchmark's own, for the schema)."""
    try:
        import asyncpg  # type: ignore[import-untyped]  # no type hints of its own
    except ImportError as exc:
        raise RuntimeError("--state postgres needs asyncpg: pip install -e '.[postgres]'") from exc
    try:
        return await asyncpg.connect(url, timeout=10)
    except Exception as exc:
        raise RuntimeError(f"PostgreSQL at {url} does not answer: {exc}") from exc


@asynccontextmanager
async def state_store(
    layout: Layout, state_dir: str, log: Callable[[str], None]
) -> AsyncIterator[str]:
    """The control planes' state store (what `--state-url` says): a SQLite file in
    `state_dir`, or a fresh PostgreSQL schema, dropped on the way out."""
    if layout.state == "sqlite":
        yield os.path.join(state_dir, "control_plane.sqlite3")
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    connection = await _postgres(layout.postgres_url)  # fails early, and clearly
    await connection.close()
    log(f"state: PostgreSQL schema {schema}")
    try:
        yield with_schema(layout.postgres_url, schema)
    finally:
        try:
            connection = await _postgres(layout.postgres_url)
            try:
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await connection.close()
        except Exception as exc:
            log(f"could not drop schema {schema}: {type(exc).__name__}: {exc}")


# -- the processes ------------------------------------------------------------------------


@dataclass
class System:
    """The children of one measured system, by kind, and the control planes' URLs."""

    layout: Layout
    control_planes: list[Child] = field(default_factory=list)
    services: list[Child] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    @property
    def children(self) -> list[Child]:
        """Every child, in the order they started."""
        return [*self.control_planes, *self.services]


@dataclass
class Launch:
    """What every child is started with."""

    url: str
    exchange: str
    state_url: str
    env: dict[str, str]
    #: The role's extra arguments for profiling it (cProfile), if profiled.
    profile_args: Callable[[str], list[str]]
    #: The OpenTelemetry variables when tracing, else None.
    otel: dict[str, str] | None = None


def _numbered(name: str, index: int, count: int) -> str:
    """`name`, or `name-<index + 1>` when there are several."""
    return name if count == 1 else f"{name}-{index + 1}"


async def start_system(script: str, out: Output, launch: Launch, system: System) -> None:
    """Start the control planes, then the service replicas; each child joins `system` as
    soon as it exists (so whoever stops `system` stops it)."""
    layout = system.layout
    common = [f"--url={launch.url}", f"--exchange={launch.exchange}"]

    def env(service_name: str) -> dict[str, str]:
        if launch.otel is None:
            return launch.env
        return {**launch.env, **launch.otel, "OTEL_SERVICE_NAME": service_name}

    async def control_plane(index: int) -> str:
        role = _numbered("control-plane", index, layout.control_planes)
        extra = [*common, f"--state-url={launch.state_url}", *launch.profile_args(role)]
        child = await spawn(out, script, "control-plane", extra, env("control_plane"), name=role)
        system.control_planes.append(child)
        url = await wait_ready(child, START_TIMEOUT)
        out.log(f"{role} pid {child.pid} at {url}")
        return url

    # The first alone: it creates (migrates) the store the others open.
    first = await control_plane(0)
    rest = await asyncio.gather(*(control_plane(i) for i in range(1, layout.control_planes)))
    system.urls = [first, *rest]
    starting: list[Child] = []
    for name, suffix in STEPS:
        for index in range(layout.replicas):
            role = _numbered(name, index, layout.replicas)
            register_with = system.urls[len(starting) % len(system.urls)]
            extra = [*common, f"--service={name}", f"--suffix={suffix}"]
            extra += [f"--control-plane={register_with}", *launch.profile_args(role)]
            child = await spawn(out, script, "service", extra, env(name), name=role)
            system.services.append(child)
            starting.append(child)
    await asyncio.gather(*(wait_ready(child, START_TIMEOUT) for child in starting))
    out.log("services pids " + ", ".join(f"{c.role} {c.pid}" for c in starting))


# -- CPU ----------------------------------------------------------------------------------


@dataclass
class CpuSample:
    """CPU seconds so far of everything a burst makes work."""

    processes: dict[str, float]
    #: Each process's main thread (its event loop).
    main_threads: dict[str, float]
    #: The broker's processes, by pid (tools such as rabbitmqctl come and go).
    broker: dict[int, float]
    #: The PostgreSQL server's postmaster pid and CPU (None: SQLite, or not visible).
    postgres: tuple[int, float] | None
    #: The backends serving this system's control planes, by pid.
    backends: dict[int, float]


@dataclass
class CpuSpent:
    """CPU seconds spent between two samples (None: not measured)."""

    processes: dict[str, float]
    main_threads: dict[str, float]
    broker: float | None
    postgres: float | None
    postgres_backends: float | None
    #: The PostgreSQL server restarted in between (its figures are then None).
    postgres_restarted: bool = False


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    found: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # gone while we read
            found[pid] = cpu_seconds(pid)
    return found


def sample_cpu(system: System, broker: list[int]) -> CpuSample:
    postgres: tuple[int, float] | None = None
    backends: dict[int, float] = {}
    if system.layout.state == "postgres":
        postgres = postgres_cpu_seconds()
        pids = [child.pid for child in system.control_planes]
        backends = _cpu_by_pid(postgres_backends_of(pids, system.layout.postgres_port))
    return CpuSample(
        processes={child.role: cpu_seconds(child.pid) for child in system.children},
        main_threads={child.role: main_thread_cpu_seconds(child.pid) for child in system.children},
        broker=_cpu_by_pid(broker),
        postgres=postgres,
        backends=backends,
    )


def cpu_spent(before: CpuSample, after: CpuSample) -> CpuSpent:
    """What was spent in between. The broker: its processes there both times. The backends:
    one first seen after counts whole (it was opened in between); one gone by then is
    missed (pools keep theirs for minutes)."""
    common = before.broker.keys() & after.broker.keys()
    broker = sum(after.broker[pid] - before.broker[pid] for pid in common) if common else None
    restarted = (
        before.postgres is not None
        and after.postgres is not None
        and before.postgres[0] != after.postgres[0]
    )
    postgres = backends = None
    if before.postgres is not None and after.postgres is not None and not restarted:
        postgres = after.postgres[1] - before.postgres[1]
        backends = sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items())
    return CpuSpent(
        processes={role: cpu - before.processes[role] for role, cpu in after.processes.items()},
        main_threads={
            role: cpu - before.main_threads[role] for role, cpu in after.main_threads.items()
        },
        broker=broker,
        postgres=postgres,
        postgres_backends=backends,
        postgres_restarted=restarted,
    )
