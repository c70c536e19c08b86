"""The README's SDK, CLI and `WorkflowClient` blocks, run as written against the
system they name: a control plane on the README's default port (8000, the embedded queue on
8001) serving the `replies` workflow of `examples/workflow_human_input.py` and a `chat`
agent (offline LLM). Run by tests/end_to_end/test_readme_sdk.py
(`python -m tests.support.readme_sdk_blocks`), in a network namespace of its own when
`README_PRIVATE_NETWORK=1`, so the fixed ports are free.

Prints each block's output between `=== BLOCK <n> ===` and `=== END <n> ===` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.readme_server_flow import README, bring_loopback_up

ROOT = README.parent
WORKFLOW_CLIENT_HEADING = "### LlamaIndex's `WorkflowClient` drives the mesh"


def section_blocks(heading: str, language: str) -> list[str]:
    """Every ```<language> block of the README section under `heading`."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n#", start + len(heading) + 2)
    body = text[start : end if end != -1 else None]
    return re.findall(rf"```{language}\n(.*?)```", body, re.S)


def _reply_workflow() -> type:
    spec = importlib.util.spec_from_file_location(
        "workflow_human_input", ROOT / "examples" / "workflow_human_input.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Reply  # type: ignore[no-any-return]


def _run_python(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "__main__"})
    return out.getvalue()


def _run_bash(code: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the CLI block failed ({done.returncode}): {done.stderr}")
    return done.stdout


async def main() -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    from llama_agents import (
        AgentOrchestrator,
        AgentService,
        ControlPlaneServer,
        ServerLauncher,
        SimpleMessageQueue,
        WorkflowService,
    )
    from llama_agents.llms import default_llm

    queue = SimpleMessageQueue()  # the README's defaults: 8001
    with tempfile.TemporaryDirectory() as state:
        control_plane = ControlPlaneServer(  # and 8000
            queue,
            AgentOrchestrator(llm=default_llm()),
            state_store=Path(state) / "control_plane.sqlite3",
        )
        replies = WorkflowService(_reply_workflow()(), queue, service_name="replies", port=0)
        chat = AgentService(
            FunctionAgent(tools=[], llm=default_llm()),
            queue,
            description="Chats.",
            service_name="chat",
            port=0,
        )
        launcher = ServerLauncher([replies, chat], control_plane, queue)
        serving = asyncio.create_task(launcher.alaunch_servers())
        try:
            await launcher.wait_until_ready()
            blocks = section_blocks("### The Python SDK", "python")[1:]  # [0]: test_readme_flows
            runs = [(_run_python, code) for code in blocks]
            runs += [(_run_bash, code) for code in section_blocks("### The CLI", "bash")]
            client_blocks = section_blocks(WORKFLOW_CLIENT_HEADING, "python")
            runs += [(_run_python, code) for code in client_blocks]
            for n, (run, code) in enumerate(runs, start=1):
                output = await asyncio.to_thread(run, code)
                print(f"=== BLOCK {n} ===\n{output}=== END {n} ===", flush=True)
        finally:
            launcher.shutdown()
            await serving


if __name__ == "__main__":
    if os.environ.get("README_PRIVATE_NETWORK") == "1":
        bring_loopback_up()
    asyncio.run(main())
