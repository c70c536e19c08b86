"""The README's first command: `llama-agents demo`, on RabbitMQ and on the embedded queue."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import broker

SCRIPT = Path(sys.executable).parent / "llama-agents"


def _demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the demo as a newcomer would: no API key, no LLM server configured."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"}
        and not k.startswith("LLAMA_AGENTS_LLM_")
    }
    return subprocess.run(
        [str(SCRIPT), "demo", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**clean, **(env or {})},
    )


@pytest.mark.rabbitmq
def test_demo_runs_on_rabbitmq(amqp_url: str) -> None:
    result = _demo("--broker", "rabbitmq", env={"LLAMA_AGENTS_AMQP_URL": amqp_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Broker: RabbitMQ")
    assert "LLM: offline function-calling LLM" in result.stdout
    assert "Result: The secret fact is: A baby llama is called a 'Cria'." in result.stdout
    # Its exchange was its own: nothing of it is left on the broker, its answer included.
    exchange = re.search(r"exchange='(llama_agents_demo_[0-9a-f]+)'", result.stdout)
    assert exchange is not None, result.stdout
    left = asyncio.run(broker.list_json("queues", "name"))
    assert [q["name"] for q in left if q["name"].startswith(exchange.group(1))] == []


def test_demo_falls_back_to_the_embedded_queue_without_a_broker() -> None:
    result = _demo(env={"LLAMA_AGENTS_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"})
    assert result.returncode == 0, result.stderr
    assert "Broker: the embedded SimpleMessageQueue (no RabbitMQ answered" in result.stdout
    assert "Result: The secret fact is: A baby llama is called a 'Cria'." in result.stdout
    assert result.stderr == "", "the fallback is announced once, without log noise"


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_cli_help_and_version(flag: str) -> None:
    result = subprocess.run([str(SCRIPT), flag], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip()


def test_demo_requiring_rabbitmq_fails_clearly_without_one() -> None:
    result = _demo(
        "--broker", "rabbitmq", env={"LLAMA_AGENTS_AMQP_URL": "amqp://u:pw@127.0.0.1:1/"}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot connect to RabbitMQ")
    assert "pw@" not in result.stderr
