"""What the benchmarks share: their output, statistics, the broker, child processes, /proc.

A benchmark prints one JSON object per line on stdout (its figures) and its progress on
stderr (`Output`). Multi-process benchmarks start themselves again with `--role` (`spawn`);
a child says it is ready by printing one `READY` line (`announce`, `wait_ready`), stops on
SIGTERM (`stop_event`, `stop_child`), and its CPU and memory are read from /proc.

The scripts import this module as `_common` (their own folder is first on `sys.path` when
they run as `python benchmarks/<name>.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import pwd
import re
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_agents._runtime import tune_gc_for_serving

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
READY = "READY"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: A backend's client port in its process title: `... 127.0.0.1(54321) idle`.
BACKEND_CLIENT_PORT = re.compile(r"\((\d+)\)")


class Output:
    """A benchmark's two streams: figures as JSON lines on stdout, progress on stderr."""

    def __init__(self, bench: str) -> None:
        self.bench = bench

    def log(self, text: str) -> None:
        print(f"[{self.bench}] {text}", file=sys.stderr, flush=True)

    def emit(self, record: dict[str, Any]) -> None:
        print(json.dumps(record), flush=True)


# -- statistics ---------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values`."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


async def alternating_rounds(
    ways: Sequence[str], rounds: int, measure: Callable[[str], Awaitable[float]]
) -> dict[str, list[float]]:
    """`measure(way)` for every way, `rounds` times over, the ways taking turns (so the
    machine's drift falls on all of them alike)."""
    figures: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(rounds):
        for way in ways:
            figures[way].append(await measure(way))
    return figures


def cpu_record(
    args: argparse.Namespace, way: str, figures: dict[str, list[float]], **fields: Any
) -> dict[str, Any]:
    """One way's JSON line: `fields`, the load, and its CPU ms per run (median, all rounds)."""
    return {
        **fields,
        "way": way,
        "runs": args.runs,
        "in_flight": args.in_flight,
        "rounds": args.rounds,
        "cpu_ms_per_run": round(statistics.median(figures[way]), 3),
        "cpu_ms_per_run_all": [round(v, 3) for v in figures[way]],
    }


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to the microsecond."""
    return round(seconds * 1000.0, 3)


# -- the command line ---------------------------------------------------------------------


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_url_option(parser: argparse.ArgumentParser) -> None:
    """`--url`: the broker, by default `LLAMA_AGENTS_AMQP_URL` or the local one."""
    parser.add_argument(
        "--url",
        default=os.environ.get("LLAMA_AGENTS_AMQP_URL", DEFAULT_URL),
        help="AMQP URL of the broker (default: $LLAMA_AGENTS_AMQP_URL or the local broker)",
    )


def add_rounds_options(parser: argparse.ArgumentParser) -> None:
    """`--runs`, `--in-flight` and `--rounds`: the load of an in-process CPU benchmark
    (what `cpu_record` reports)."""
    parser.add_argument("--runs", type=positive, default=200, help="runs per way and round")
    parser.add_argument("--in-flight", type=positive, default=50, help="runs at once")
    parser.add_argument("--rounds", type=positive, default=3, help="rounds (medians)")


def description(doc: str | None) -> str | None:
    """A parser's description: the first line of the script's docstring."""
    return doc.splitlines()[0] if doc else None


# -- the broker ---------------------------------------------------------------------------


async def broker_error(url: str, timeout: float = 5.0) -> str | None:
    """Why the broker at `url` cannot be used, or None when it can."""
    import aio_pika

    try:
        connection = await aio_pika.connect(url, timeout=timeout)
    except Exception as exc:
        return f"broker unreachable: {type(exc).__name__}: {exc}"
    await connection.close()
    return None


async def delete_leftovers(url: str, exchange: str, queues: list[str]) -> list[str]:
    """Delete these queues and the exchange where they still exist; return what was deleted."""
    import aio_pika
    from aio_pika.exceptions import ChannelClosed

    removed: list[str] = []
    connection = await aio_pika.connect(url, timeout=10.0)
    try:
        for name in queues:
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


# -- /proc --------------------------------------------------------------------------------


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds of process `pid` (all its threads, or only `thread`) so far."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    stat = Path(path).read_text()
    # The command name (field 2) may hold spaces: count fields after its closing paren.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def main_thread_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid`'s main thread (its event loop's) so far;
    the rest of `cpu_seconds` is its other threads' (executors, exporters)."""
    return cpu_seconds(pid, thread=pid)


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (`VmHWM`) in MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return None


def rss_mb(pid: int) -> float | None:
    """The process's resident set size now (`VmRSS`) in MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return None


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds of the whole machine so far (every core): (busy, total), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user and nice
    return (total - idle) / CLK_TCK, total / CLK_TCK


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


def reaped_children_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the children `pid` has waited for (they are gone)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cutime, cstime = int(fields[13]), int(fields[14])
    return (cutime + cstime) / CLK_TCK


def postgres_pids() -> list[int]:
    """Pids of the PostgreSQL server's processes (command `postgres`, run by the `postgres`
    user where there is one) visible from here."""
    try:
        uid: int | None = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        uid = None
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            if uid is None or entry.stat().st_uid == uid:
                pids.append(int(entry.name))
    return pids


def postmaster_pid(pids: list[int]) -> int | None:
    """Of the server's processes, the one they descend from (its parent is none of them)."""
    members = set(pids)
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) not in members:
                return pid
    return None


def postgres_cpu_seconds() -> tuple[int, float] | None:
    """The PostgreSQL server's postmaster pid, and the CPU seconds the server spent so far:
    its live processes', and the backends that already exited (the postmaster's reaped
    children), so a connection that closes between two readings still counts. The whole
    server: other clients' work included. A different postmaster pid means a restart."""
    pids = postgres_pids()
    postmaster = postmaster_pid(pids)
    if postmaster is None:
        return None
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend may exit while we read
            total += cpu_seconds(pid) + reaped_children_cpu_seconds(pid)
    return postmaster, total


def _socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open."""
    inodes: set[int] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _client_ports(inodes: set[int], server_port: int) -> set[int]:
    """The local ports of the TCP connections (among `inodes`) to `server_port`."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[9]) not in inodes:
                    continue
                if int(fields[2].rsplit(":", 1)[1], 16) == server_port:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def postgres_backends_of(client_pids: list[int], server_port: int) -> list[int]:
    """The PostgreSQL backends serving the connections these processes hold to the server
    at `server_port` (matched by the client port in each backend's process title, as in
    ``postgres: 15/main: postgres test 127.0.0.1(54321) idle``)."""
    inodes: set[int] = set()
    for pid in client_pids:
        inodes |= _socket_inodes(pid)
    ports = _client_ports(inodes, server_port)
    backends: list[int] = []
    for pid in postgres_pids():
        with contextlib.suppress(OSError):
            title = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
            match = BACKEND_CLIENT_PORT.search(title)
            if match and int(match.group(1)) in ports:
                backends.append(pid)
    return backends


# -- a child's side -----------------------------------------------------------------------


def announce(text: str = "") -> None:
    """Tell the parent this child is ready (the one line a child writes on stdout)."""
    print(f"{READY} {text}".rstrip(), flush=True)


def stop_event(profile: str | None = None) -> asyncio.Event:
    """An event set by SIGTERM or SIGINT; with `profile`, SIGUSR1/SIGUSR2 start/stop cProfile.

    Each SIGUSR2 writes the profile gathered so far (over every SIGUSR1..SIGUSR2 window). The
    profile counts the event loop thread's CPU time, not wall time: a system call that
    blocks, or a wait for the GIL, would otherwise be charged to whatever made it.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)

        def finish() -> None:
            profiler.disable()
            profiler.dump_stats(profile)

        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, finish)
    return stop


# -- the parent's side --------------------------------------------------------------------


@dataclass
class Child:
    """One child process: its role, its process, and what it said once ready."""

    role: str
    process: asyncio.subprocess.Process
    out: Output
    ready_text: str = ""
    drain: asyncio.Task[None] | None = None
    profiler: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


async def serve_until(
    serving: asyncio.Task[Any], ready: Awaitable[str], stop: asyncio.Event
) -> None:
    """A served child's life once `serving` runs: wait for `ready` (its URL), tune the
    collector as `llama-agents serve` does once ready, say READY with the URL, then run until
    `stop` is set or `serving` ends. If `serving` ends before it is ready, its error is raised."""
    waiting = asyncio.ensure_future(ready)
    await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        waiting.cancel()
        await serving  # raises what stopped it
        return
    url = await waiting
    tune_gc_for_serving()
    announce(url)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()


async def serve_control_plane(
    control_plane: Any, queue: Any, stop: asyncio.Event, *, start: float, stop_timeout: float
) -> None:
    """A control-plane child's life: serve, say READY with its URL, run until `stop`, then
    close it and tidy the broker (whatever ended it)."""
    serving = asyncio.create_task(control_plane.launch_server(), name="control-plane")
    try:
        await serve_until(serving, control_plane.wait_until_serving(start), stop)
    finally:
        # close() stops the HTTP server, which ends launch_server (which closes again).
        await control_plane.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(serving, stop_timeout)
        try:
            await queue.cleanup()
        finally:
            await queue.close()


async def spawn(
    out: Output, script: str, role: str, extra: list[str], env: dict[str, str], name: str = ""
) -> Child:
    """Start `script` again as `role` (called `name`); stderr is ours, stdout read for READY."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        "--role",
        role,
        *extra,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    return Child(role=name or role, process=process, out=out)


async def wait_ready(child: Child, timeout: float) -> str:
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
                child.drain = asyncio.create_task(_forward(child))
                return child.ready_text
            child.out.log(f"{child.role}: {line}")


async def _forward(child: Child) -> None:
    """Pass on whatever else the child prints on stdout (so its pipe never fills)."""
    assert child.process.stdout is not None
    async for raw in child.process.stdout:
        child.out.log(f"{child.role}: {raw.decode().rstrip()}")


async def stop_child(child: Child, timeout: float) -> int | None:
    """SIGTERM, wait up to `timeout` seconds; SIGKILL if it hangs. Returns the exit code."""
    process = child.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            child.out.log(f"{child.role} did not exit within {timeout}s of SIGTERM; killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if child.drain is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(child.drain, 5.0)
    return process.returncode


# -- profiling the children ------------------------------------------------------------------------


def py_spy_path() -> str | None:
    """py-spy beside this Python, else on PATH, else None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def start_profiling(children: list[Child], profiler: str, directory: str) -> None:
    """Profile `children` from now on: `cprofile` (each child's own, see `stop_event`), or
    `py-spy` (`<directory>/<role>.txt`, collapsed stacks of every thread)."""
    if profiler == "cprofile":
        for child in children:
            child.process.send_signal(signal.SIGUSR1)
        return
    binary = py_spy_path()
    assert binary is not None
    for child in children:
        output = Path(directory) / f"{child.role}.txt"
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


async def stop_profiling(children: list[Child], profiler: str) -> None:
    """Stop what `start_profiling` started; the profiles are written."""
    for child in children:
        if profiler == "cprofile":
            child.process.send_signal(signal.SIGUSR2)
        elif child.profiler is not None:
            with contextlib.suppress(ProcessLookupError):
                child.profiler.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.profiler.wait(), 30.0)
            child.profiler = None
