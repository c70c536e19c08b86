"""The README's SDK, CLI and `WorkflowClient` blocks, run as written, against
the default ports they name (in a network namespace of their own where the machine allows)."""

from __future__ import annotations

import ast
import asyncio
import re
import sys

import pytest

from tests.conftest import _in_ci
from tests.support.processes import offline_env, private_network_prefix, run_to_end


def _blocks(text: str) -> dict[int, str]:
    return {
        int(n): body
        for n, body in re.findall(r"=== BLOCK (\d+) ===\n(.*?)=== END \1 ===", text, re.S)
    }


async def test_the_sdk_and_cli_blocks_run_as_written() -> None:
    prefix = await asyncio.to_thread(private_network_prefix)
    if prefix is None:
        message = "no private network namespace for the README's fixed ports"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: the README's blocks must be tested)")
        pytest.skip(message)
    env = offline_env({"README_PRIVATE_NETWORK": "1"})
    argv = [*prefix, sys.executable, "-m", "tests.support.readme_sdk_blocks"]
    code, text = await run_to_end(argv, env, timeout=170)
    assert code == 0, text[-4000:]
    blocks = _blocks(text)
    assert sorted(blocks) == [1, 2, 3, 4], text[-4000:]

    # The workflow run: its events in order, the answer, the whole log read again.
    run = blocks[1].splitlines()
    assert run[0] == (
        "1 InputRequiredEvent {'prefix': \"Send this reply? 'Dear customer, about the late "
        "invoice: it is fixed.' (yes/no)\"}"
    ), run
    assert run[1].startswith("2 TaskFinished {'status': 'completed'"), run
    assert run[2] == "sent: Dear customer, about the late invoice: it is fixed.", run
    assert run[3] == "['InputRequiredEvent', 'TaskFinished']", run

    # The session: two answers, then both tasks, in order.
    session = blocks[2].splitlines()
    assert len(session) == 3, session
    assert session[2].startswith("[") and session[2].count("'") == 4, session

    # The shell: the follow printed the run's events; the result is the approved reply.
    shell = blocks[3]
    assert "waiting_for_input" in shell, shell
    assert "TaskFinished" in shell
    assert "sent: Dear customer, about the late invoice: it is fixed." in shell
    assert shell.rstrip().splitlines()[-1].startswith("{"), "--json prints JSON lines"

    # LlamaIndex's WorkflowClient: the workflows, the run's events, the answer, the result.
    client = blocks[4].splitlines()
    assert sorted(ast.literal_eval(client[0])) == ["chat", "replies"], client
    assert client[1:] == [
        "InputRequiredEvent",
        "StopEvent",
        "completed sent: Dear customer, about the late invoice: it is fixed.",
    ], client
