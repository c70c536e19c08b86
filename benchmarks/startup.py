"""Benchmark cold starts: the package, the SDK, the CLI, and a served service.

Every measurement starts fresh OS processes (``--runs`` of them, 5 by default) and prints one
JSON line on stdout with the median, min and max of:

* ``import llama_agents`` and ``import llama_agents.sdk`` (``python -c ...``): wall time and
  peak RSS (the child's ``VmHWM``, which it writes out at exit: see ``HWM_WRAPPER``);
* ``llama-agents --help``: the same;
* ``llama-agents tasks list`` against a running control plane, which the script starts in its
  own process (running itself with ``--role control-plane``: the embedded queue, served over
  HTTP, and the control plane, both on free ports, with a few tasks in its store);
* ``llama-agents serve service ...`` for a tool service and an agent service (offline LLM):
  the time from the process's start until it logged that it is ready, which it does once its
  queue is consumed and the control plane accepted its registration (the script then checks
  ``GET /services``), its RSS after one idle second, and its peak RSS. With RabbitMQ
  answering (``LLAMA_AGENTS_AMQP_URL``, else the local broker) the control plane and the
  services run on it (``llama-agents serve control-plane``, an exchange of their own, deleted
  at the end); otherwise they use the embedded queue's HTTP server, which feeds a service
  by POSTing to its URL (the benchmark's services ask for a remote consumer there).

Figures only, never pass/fail; each line carries the target it is meant to meet. Progress
goes to stderr. Run it with the interpreter of the installation to measure::

    .venv/bin/python benchmarks/startup.py
    .venv/bin/python benchmarks/startup.py --runs 9
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = "startup"
PYTHON = sys.executable
CLI = str(Path(sys.executable).parent / "llama-agents")
DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"
START_TIMEOUT = 60.0

SERVICE_MODULE = '''
"""The services the startup benchmark serves: a tool service and an agent service."""

import os

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentService,
    OfflineLLM,
    RabbitMQMessageQueue,
    SimpleRemoteClientMessageQueue,
    ToolService,
)


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return "The secret fact is: A baby llama is called a 'Cria'."


def _queue():
    url = os.environ.get("BENCH_QUEUE_URL")
    return SimpleRemoteClientMessageQueue(url) if url else RabbitMQMessageQueue()


class _Pushed:
    """On the embedded queue's HTTP server, a service is fed by POSTs to its own URL."""

    def as_consumer(self, remote=False):
        return super().as_consumer(remote=remote or "BENCH_QUEUE_URL" in os.environ)


class BenchToolService(_Pushed, ToolService):
    pass


class BenchAgentService(_Pushed, AgentService):
    pass


def tool_service() -> ToolService:
    return BenchToolService(
        message_queue=_queue(),
        tools=[FunctionTool.from_defaults(fn=get_the_secret_fact)],
        description="Runs the secret-fact tool.",
        service_name="bench_tool_service",
    )


def agent_service() -> AgentService:
    tool = FunctionTool.from_defaults(fn=get_the_secret_fact)
    return BenchAgentService(
        agent=FunctionAgent(tools=[tool], llm=OfflineLLM()),
        message_queue=_queue(),
        description="Useful for getting the secret fact.",
        service_name="bench_agent_service",
    )
'''

SERVICES = {"tool service": "tool_service", "agent service": "agent_service"}


def emit(record: dict[str, Any]) -> None:
    print(json.dumps({"bench": BENCH, **record}), flush=True)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A machine with no LLM configured (so nothing reaches for the network)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LLAMA_AGENTS_")
        and key not in {"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"}
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


# -- short-lived commands --------------------------------------------------------------------


#: Runs a command (`-c CODE` or a script with its arguments) and, at exit, writes the
#: process's peak RSS (`VmHWM`, kB) to $BENCH_HWM_FILE. Read from inside: `ru_maxrss` of a child
#: starts at its parent's peak (Linux keeps it across fork and exec), so it would report the
#: benchmark's own size as a floor.
HWM_WRAPPER = """
import atexit, os, runpy, sys

def _report():
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:")).split()[1]
    with open(os.environ["BENCH_HWM_FILE"], "w") as out:
        out.write(peak)

atexit.register(_report)
if sys.argv[1] == "-c":
    code, sys.argv = sys.argv[2], ["-c"]
    exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of `command` (`-c CODE`, or a Python script
    and its arguments, run by this interpreter), which must succeed."""
    with tempfile.TemporaryDirectory() as folder:
        peak_file = Path(folder) / "peak"
        errors_file = Path(folder) / "stderr"
        with errors_file.open("wb") as errors:
            start = time.perf_counter()
            child = subprocess.run(
                [PYTHON, "-c", HWM_WRAPPER, *command],
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env={**env, "BENCH_HWM_FILE": str(peak_file)},
                check=False,
            )
            wall = time.perf_counter() - start
        if child.returncode != 0:
            raise RuntimeError(f"{command} exited {child.returncode}: {errors_file.read_text()}")
        return wall, int(peak_file.read_text()) / 1024


def measure_command(
    name: str, command: list[str], env: dict[str, str], runs: int, target: dict[str, float]
) -> None:
    progress(f"measuring {name} ...")
    walls, peaks = [], []
    for _ in range(runs):
        wall, peak = run_once(command, env)
        walls.append(wall)
        peaks.append(peak)
    emit(
        {
            "measure": name,
            "runs": runs,
            "wall_s": spread(walls),
            "peak_rss_mb": spread(peaks, 1),
            "target": target,
        }
    )


# -- long-running children -------------------------------------------------------------------


class Child:
    """A process whose output lines are read by a thread, so the script can wait for one."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str | None = None) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, marker: str, timeout: float = START_TIMEOUT) -> tuple[str, float]:
        """The first line containing `marker`, and seconds since the process started."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                output = "".join(self.output)
                raise TimeoutError(f"no {marker!r} within {timeout}s: {output}") from None
            if line is None:
                raise RuntimeError(f"exited before {marker!r}: {''.join(self.output)}")
            if marker in line:
                return line.strip(), time.perf_counter() - self.started

    def rss_mb(self) -> float:
        return _proc_status(self.process.pid, "VmRSS")

    def peak_rss_mb(self) -> float:
        return _proc_status(self.process.pid, "VmHWM")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _proc_status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 5672), 2.0):
            return True
    except OSError:
        return False


# -- the embedded control plane (a child role) -----------------------------------------------


async def control_plane_role() -> None:
    """The embedded queue served over HTTP, and a control plane on it; prints READY."""
    from llama_agents import AgentOrchestrator, ControlPlaneServer, OfflineLLM, SimpleMessageQueue

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    message_queue = SimpleMessageQueue(port=0)
    queue_serving = asyncio.create_task(message_queue.launch_server())
    queue_url = await message_queue.wait_until_serving()
    control_plane = ControlPlaneServer(message_queue, AgentOrchestrator(llm=OfflineLLM()), port=0)
    serving = asyncio.create_task(control_plane.launch_server())
    await control_plane.wait_until_serving()
    print(f"READY {control_plane.url} {queue_url}", flush=True)
    await stop.wait()
    await control_plane.close()
    await asyncio.wait_for(serving, 30)
    await message_queue.close()
    await asyncio.wait_for(queue_serving, 30)


# -- the measurements ------------------------------------------------------------------------


def measure_client_commands(runs: int, workdir: Path) -> None:
    env = clean_env()
    measure_command(
        "import llama_agents",
        ["-c", "import llama_agents"],
        env,
        runs,
        {"wall_s": 0.25},
    )
    measure_command(
        "import llama_agents.sdk",
        ["-c", "import llama_agents.sdk"],
        env,
        runs,
        {"wall_s": 0.4, "peak_rss_mb": 60},
    )
    measure_command(
        "llama-agents --help", [CLI, "--help"], env, runs, {"wall_s": 0.4, "peak_rss_mb": 60}
    )

    state = clean_env({"LLAMA_AGENTS_STATE_PATH": str(workdir / "embedded.sqlite3")})
    control_plane = Child([PYTHON, __file__, "--role", "control-plane"], state)
    try:
        line, _ = control_plane.wait_for("READY")
        url = line.split()[1]
        _create_tasks(url, 10)
        measure_command(
            "llama-agents tasks list",
            [CLI, "tasks", "list", "--control-plane-url", url],
            env,
            runs,
            {"wall_s": 0.4, "peak_rss_mb": 60},
        )
    finally:
        control_plane.stop()


def _create_tasks(url: str, count: int) -> None:
    """A few tasks in the store, so the listing has something to read."""
    from llama_agents.sdk import LlamaAgentsClient

    with LlamaAgentsClient(url) as client:
        for index in range(count):
            client.create_task(f"question {index}")


def measure_served_services(runs: int, workdir: Path, amqp_url: str) -> None:
    (workdir / "bench_services.py").write_text(SERVICE_MODULE)
    on_rabbitmq = broker_answers(amqp_url)
    exchange = f"bench_startup_{uuid.uuid4().hex[:8]}"
    base = clean_env({"LLAMA_AGENTS_STATE_PATH": str(workdir / "served.sqlite3")})
    if on_rabbitmq:
        base |= {"LLAMA_AGENTS_AMQP_URL": amqp_url, "LLAMA_AGENTS_EXCHANGE": exchange}
        port = free_port()
        argv = [CLI, "serve", "control-plane", "--port", str(port)]
        control_plane = Child(argv, base)
        control_plane.wait_for("control plane ready at")
        control_plane_url, queue_url = f"http://127.0.0.1:{port}", None
        fabric = "RabbitMQ"
    else:
        control_plane = Child([PYTHON, __file__, "--role", "control-plane"], base)
        line, _ = control_plane.wait_for("READY")
        control_plane_url, queue_url = line.split()[1], line.split()[2]
        fabric = "the embedded queue over HTTP"
    env = base | {"LLAMA_AGENTS_CONTROL_PLANE_URL": control_plane_url}
    if queue_url:
        env["BENCH_QUEUE_URL"] = queue_url
    try:
        for kind, factory in SERVICES.items():
            progress(f"measuring a served {kind} on {fabric} ...")
            ready, idle, peaks = [], [], []
            for _ in range(runs):
                seconds, idle_mb, peak_mb = _serve_once(factory, env, workdir, control_plane_url)
                ready.append(seconds)
                idle.append(idle_mb)
                peaks.append(peak_mb)
            emit(
                {
                    "measure": f"serve {kind}",
                    "fabric": fabric,
                    "runs": runs,
                    "ready_and_registered_s": spread(ready),
                    "idle_rss_mb": spread(idle, 1),
                    "peak_rss_mb": spread(peaks, 1),
                    "target": {"ready_and_registered_s": 2.0},
                }
            )
    finally:
        control_plane.stop()
        if on_rabbitmq:
            removed = asyncio.run(_delete_exchange(amqp_url, exchange))
            progress(f"deleted {', '.join(removed) or 'nothing'}")


def _serve_once(
    factory: str, env: dict[str, str], workdir: Path, control_plane_url: str
) -> tuple[float, float, float]:
    """Seconds until ready and registered, RSS after one idle second, peak RSS."""
    from llama_agents.sdk import LlamaAgentsClient

    target = f"bench_services.py:{factory}"
    port = str(free_port())  # known up front: on the embedded queue it is the consumer's URL
    child = Child([CLI, "serve", "service", target, "--port", port], env, cwd=str(workdir))
    try:
        _, seconds = child.wait_for(" ready at ")
        with LlamaAgentsClient(control_plane_url) as client:
            registered = {d.service_name for d in client.list_services()}
        if f"bench_{factory}" not in registered:
            raise RuntimeError(f"bench_{factory} is not registered: {registered}")
        time.sleep(1.0)  # idle: nothing is sent to it
        idle, peak = child.rss_mb(), child.peak_rss_mb()
    finally:
        child.stop()
    return seconds, idle, peak


async def _delete_exchange(url: str, exchange: str) -> list[str]:
    from _common import delete_leftovers

    from llama_agents.message_queues.rabbitmq.topology import dead_letter_queue_name, queue_name

    names = [queue_name(exchange, name) for name in ("control_plane", "human")]
    names += [queue_name(exchange, f"bench_{factory}") for factory in SERVICES.values()]
    names.append(dead_letter_queue_name(exchange))
    return await delete_leftovers(url, exchange, names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="cold runs per measurement")
    parser.add_argument("--url", default=os.environ.get("LLAMA_AGENTS_AMQP_URL", DEFAULT_AMQP_URL))
    parser.add_argument("--role", choices=["control-plane"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "control-plane":
        asyncio.run(control_plane_role())
        return
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as folder:
        workdir = Path(folder)
        measure_client_commands(args.runs, workdir)
        measure_served_services(args.runs, workdir, args.url)


if __name__ == "__main__":
    main()
