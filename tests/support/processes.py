"""Running parts of a system as separate OS processes, as containers would.

Readiness is awaited from what a process logs ("... ready at ..."), never guessed with a
sleep. Every process is stopped (and killed if it hangs) when the group closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "llama-agents")


def _server_ports() -> tuple[int, int]:
    """Ports outside the kernel's ephemeral range (outgoing connections take those)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        first, last = (int(part) for part in text.split())
    except (OSError, ValueError):
        first, last = 32768, 60999
    if first - 20000 > 1000:
        return 20000, first - 1
    if 65535 - last > 1000:
        return last + 1, 65535
    return 1024, 65535


_SERVER_PORTS = _server_ports()
_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now, for a server started a moment later.

    Not one the kernel gives for binding port 0: those are in its ephemeral range, where any
    outgoing connection can take the port before the server binds it (the server then fails
    to start; seen in CI). Never the same port twice in one test run.
    """
    low, high = _SERVER_PORTS
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


def offline_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a fresh machine: no LLM keys, so services use the offline LLM."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LLAMA_AGENTS_")
        and k not in {"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"}
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    ready_marker: str
    lines: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    new_line: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for_line(self, text: str, timeout: float = 60.0) -> str:
        """The first output line containing `text`, as soon as the process prints it."""
        async with asyncio.timeout(timeout), self.new_line:
            await self.new_line.wait_for(lambda: any(text in line for line in self.lines))
        return next(line for line in self.lines if text in line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return "\n".join(self.lines[-60:])


class ProcessGroup:
    """Starts named processes, waits for them to be ready, stops them."""

    def __init__(self) -> None:
        self.procs: dict[str, Proc] = {}

    async def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        ready_marker: str,
        timeout: float = 60.0,
    ) -> Proc:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, process, ready_marker)
        proc.reader = asyncio.create_task(self._read(proc))
        self.procs[name] = proc
        await self.wait_ready(proc, timeout)
        return proc

    async def _read(self, proc: Proc) -> None:
        assert proc.process.stdout is not None
        async for raw in proc.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            async with proc.new_line:
                proc.lines.append(line)
                proc.new_line.notify_all()
            if proc.ready_marker in line:
                proc.ready.set()

    async def wait_ready(self, proc: Proc, timeout: float) -> None:
        exited = asyncio.create_task(proc.process.wait())
        ready = asyncio.create_task(proc.ready.wait())
        done, _ = await asyncio.wait(
            {exited, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        exited.cancel()
        ready.cancel()
        if ready not in done:
            raise RuntimeError(
                f"{proc.name} did not become ready ({proc.ready_marker!r}); "
                f"exit code {proc.process.returncode}; output:\n{proc.output()}"
            )

    async def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send `sig` and wait for the exit; kill after `timeout`. Returns the exit code."""
        proc = self.procs.pop(name)
        if proc.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.process.send_signal(sig)
            try:
                await asyncio.wait_for(proc.process.wait(), timeout)
            except TimeoutError:
                proc.process.kill()
                await proc.process.wait()
        if proc.reader is not None:
            await asyncio.wait_for(proc.reader, 10)
        return proc.process.returncode if proc.process.returncode is not None else -1

    async def kill(self, name: str) -> int:
        """`kill -9`: no chance to clean up."""
        return await self.stop(name, signal.SIGKILL)

    async def close(self) -> None:
        for name in list(self.procs):
            await self.stop(name)


def private_network_prefix() -> list[str] | None:
    """`unshare -rn` when this machine lets a user process have its own network namespace
    (where a README's fixed ports are always free)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=30)
    return [unshare, "-rn"] if probe.returncode == 0 else None


async def _run(
    argv: list[str], env: dict[str, str] | None, timeout: float, *, merged: bool
) -> tuple[int, bytes, bytes]:
    """Run `argv` from the project root to its end (killed after `timeout` seconds): its
    exit code, stdout and stderr (stderr in stdout when `merged`)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merged else asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out, err or b""


async def run_to_end(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run `argv` from the project root to its end (killed after `timeout` seconds); its
    exit code and its output, stdout and stderr together."""
    code, output, _ = await _run(argv, env, timeout, merged=True)
    return code, output.decode(errors="replace")


async def run_benchmark(script: str, *args: str, timeout: float) -> list[dict[str, Any]]:
    """Run `benchmarks/<script>` with `args` to its end (killed after `timeout` seconds),
    check that it exited 0, and return the JSON lines it printed."""
    argv = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    code, out, err = await _run(argv, None, timeout, merged=False)
    assert code == 0, err.decode(errors="replace")[-2000:]
    return [json.loads(line) for line in out.decode().splitlines()]
