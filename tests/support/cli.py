"""Running `llama-agents ...` in-process (click's `CliRunner`) in a worker thread, as the
CLI tests do: the command blocks on HTTP while the test's loop serves the control plane.

`CliRunner` swaps the process's stdout while a command runs, so two commands at once would
print into each other: a command that runs while others do (`--follow`) is a subprocess.
"""

from __future__ import annotations

import asyncio
import os

from click.testing import CliRunner, Result

from llama_agents.console import main
from tests.support.processes import CLI


async def cli(url: str | None, *args: str) -> Result:
    """`llama-agents <args>`, pointed at `url` through the environment."""
    env = {"LLAMA_AGENTS_API_KEY": None, "LLAMA_AGENTS_CONTROL_PLANE_URL": url}
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, main, list(args), env=env, prog_name="llama-agents"
    )


def ok(result: Result) -> str:
    """The stdout of a command that succeeded."""
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def one_error_line(result: Result) -> str:
    """The single `Error: ...` line a failing command prints, with no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


async def cli_process(url: str, *args: str) -> asyncio.subprocess.Process:
    """`llama-agents <args>` as a real process, its stdout and stderr piped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_AGENTS_")}
    env["LLAMA_AGENTS_CONTROL_PLANE_URL"] = url
    return await asyncio.create_subprocess_exec(
        CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
