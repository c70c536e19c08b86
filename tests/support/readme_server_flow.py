"""Our README's "Getting started" and "Server flow" code blocks, run exactly as written
(defaults included: the queue's port, the control plane's port), then its SDK block as the
client. Run by tests/end_to_end/test_readme_flows.py
(`python -m tests.support.readme_server_flow`).

The blocks are read from README.md, so the test follows the README. The LLM the README's
`OpenAI()` calls is the tests' scripted server, started here in a thread and found by the
OpenAI client through `OPENAI_API_BASE`. With `README_PRIVATE_NETWORK=1` the process runs in
its own network namespace (the test starts it under `unshare -rn`): the README's fixed ports
are then always free, whatever else runs on the machine.

Prints `CLIENT RESULT: <answer>` once the SDK block got the answer, then stops the servers
the way the README says (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import signal
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

README = Path(__file__).resolve().parents[2] / "README.md"
DEADLINE = 60.0


def python_block(heading: str) -> str:
    """The first ```python block after `heading` in README.md."""
    text = README.read_text()
    start = text.index(heading)
    found = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    if found is None:
        raise LookupError(f"no python block after {heading!r} in {README}")
    return found.group(1)


def bring_loopback_up() -> None:
    """In a fresh network namespace the loopback interface is down: bring it up."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    request = struct.pack("16sH14x", b"lo", 0)
    flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, request))[1]
    fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))
    sock.close()


def start_scripted_llm() -> str:
    """The scripted OpenAI-compatible server, playing the README's scenario, in a thread."""
    from tests.support.getting_started import readme_rules
    from tests.support.llm_server import ScriptedLLMServer

    started = threading.Event()
    url: list[str] = []

    async def serve() -> None:
        async with ScriptedLLMServer(readme_rules()) as server:
            url.append(server.base_url)
            started.set()
            await asyncio.Event().wait()  # until the process exits

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    if not started.wait(DEADLINE):
        raise RuntimeError("the scripted LLM server did not start")
    return url[0]


class Watch(logging.Handler):
    """Sets an event when a log record's message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.seen.set()


class Tee:
    """stdout, noting when the README's result handler printed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.got_result = threading.Event()

    def write(self, text: str) -> int:
        if "Got result:" in text:
            self.got_result.set()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def run_client(ready: Watch, tee: Tee) -> None:
    """The README's SDK block, once the servers are up; then Ctrl-C, as the README says."""
    try:
        if not ready.seen.wait(DEADLINE):
            raise RuntimeError("the servers did not become ready")
        namespace: dict[str, Any] = {}
        exec(python_block("### The Python SDK"), namespace)
        result = namespace["result"]
        print(f"CLIENT RESULT: {result.result}", flush=True)
        tee.got_result.wait(DEADLINE)
    finally:
        os.kill(os.getpid(), signal.SIGINT)


def main() -> None:
    if os.environ.get("README_PRIVATE_NETWORK") == "1":
        bring_loopback_up()
    os.environ["OPENAI_API_BASE"] = start_scripted_llm()
    os.environ["OPENAI_API_KEY"] = "sk-test"
    logging.basicConfig(level=logging.WARNING)
    ready = Watch("all servers ready")
    launchers = logging.getLogger("llama_agents.launchers")
    launchers.setLevel(logging.INFO)
    launchers.addHandler(ready)
    tee = Tee(sys.stdout)
    sys.stdout = tee
    threading.Thread(target=run_client, args=(ready, tee), daemon=True).start()
    code = python_block("## Getting started") + "\n" + python_block("### Server flow")
    exec(compile(code, str(README), "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    main()
