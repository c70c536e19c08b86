"""Every failing `llama-agents` command prints one `Error: ...` line on stderr and exits 1.

Each case here printed tracebacks (or uvicorn's own message and exit status 3) before. The
commands run as real subprocesses, as a person runs them; `-v` shows the traceback.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llama_agents.console._failures import describe
from llama_agents.errors import ControlPlaneUnavailableError
from tests.support import broker
from tests.support.processes import CLI, free_port, offline_env
from tests.support.systems import UNREACHABLE, served_system

#: A served process's progress lines (`serve` logs what it does, at INFO and WARNING).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING) llama_agents")

SERVICE_TARGET = '''
from llama_index.core.tools import FunctionTool

from llama_agents import RabbitMQMessageQueue, ToolService


def echo(text: str) -> str:
    """Says it back."""
    return text


def build() -> ToolService:
    return ToolService(
        message_queue=RabbitMQMessageQueue(),
        tools=[FunctionTool.from_defaults(fn=echo)],
        service_name="echo_tools",
    )
'''


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        """The one `Error:` line, last on stderr; anything before it is a progress log line."""
        assert self.code == 1, self.stderr
        assert "Traceback" not in self.stderr
        *before, last = self.stderr.splitlines()
        assert last.startswith("Error: "), self.stderr
        assert all(LOG_LINE.match(line) for line in before), self.stderr
        return last


async def llama_agents_cli(*args: str, env: dict[str, str], cwd: Path | None = None) -> Outcome:
    process = await asyncio.create_subprocess_exec(
        CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    async with asyncio.timeout(180):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Outcome(process.returncode, out.decode(), err.decode())


@pytest.fixture
def service_target(tmp_path: Path) -> str:
    path = tmp_path / "echo_service.py"
    path.write_text(SERVICE_TARGET)
    return f"{path}:build"


@pytest.fixture
async def broker_env(
    amqp_url: str, exchange_name: str, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    yield offline_env(
        {
            "LLAMA_AGENTS_AMQP_URL": amqp_url,
            "LLAMA_AGENTS_EXCHANGE": exchange_name,
            "LLAMA_AGENTS_STATE_PATH": str(tmp_path / "control_plane.sqlite3"),
            "LLAMA_AGENTS_STARTUP_TIMEOUT": "1",
        }
    )
    await broker.delete_system(amqp_url, exchange_name)  # what the processes declared


@pytest.fixture
def port_in_use() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


# -- serve ------------------------------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_serve_service_when_the_control_plane_never_answers(
    service_target: str, broker_env: dict[str, str]
) -> None:
    env = {**broker_env, "LLAMA_AGENTS_CONTROL_PLANE_URL": UNREACHABLE}
    outcome = await llama_agents_cli("serve", "service", service_target, "--port", "0", env=env)
    expected = f"Error: cannot reach the control plane at {UNREACHABLE}"
    assert outcome.error_line().startswith(expected)


@pytest.mark.rabbitmq
async def test_serve_service_when_the_control_plane_refuses_the_api_key(
    service_target: str, broker_env: dict[str, str], tmp_path: Path
) -> None:
    async with served_system(tmp_path, api_key="the-right-key") as system:
        env = {
            **broker_env,
            "LLAMA_AGENTS_CONTROL_PLANE_URL": system.url,
            "LLAMA_AGENTS_API_KEY": "a-wrong-key",
        }
        outcome = await llama_agents_cli("serve", "service", service_target, "--port", "0", env=env)
    assert outcome.error_line() == f"Error: the control plane at {system.url} refused the API key"


@pytest.mark.rabbitmq
@pytest.mark.parametrize("part", ["control-plane", "service"])
async def test_serve_on_a_port_in_use(
    part: str, service_target: str, broker_env: dict[str, str], port_in_use: int
) -> None:
    target = [service_target, "--no-register"] if part == "service" else []
    outcome = await llama_agents_cli(
        "serve", part, *target, "--port", str(port_in_use), env=broker_env
    )
    line = outcome.error_line()
    assert line.startswith(f"Error: cannot listen on 127.0.0.1:{port_in_use}: "), line
    assert "in use" in line


# -- demo -------------------------------------------------------------------------------------


def demo_env(**llm: str) -> dict[str, str]:
    env = {k: v for k, v in offline_env().items() if not k.startswith("LLAMA_AGENTS_LLM_")}
    return {**env, **llm}


async def test_demo_with_an_unreachable_llm() -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    env = demo_env(OPENAI_BASE_URL=closed, LLAMA_AGENTS_LLM_MODEL="some-model")
    outcome = await llama_agents_cli("demo", "--broker", "embedded", "--timeout", "60", env=env)
    assert outcome.stdout.startswith("Broker: the embedded SimpleMessageQueue")
    assert "Result:" not in outcome.stdout
    assert len(outcome.stderr.splitlines()) == 1, outcome.stderr
    assert outcome.error_line()


async def test_demo_with_a_base_url_and_no_model() -> None:
    env = demo_env(OPENAI_BASE_URL="http://127.0.0.1:1/v1")
    outcome = await llama_agents_cli("demo", "--broker", "embedded", env=env)
    assert outcome.stdout == ""
    assert len(outcome.stderr.splitlines()) == 1, outcome.stderr
    assert "LLAMA_AGENTS_LLM_MODEL" in outcome.error_line()


async def test_verbose_shows_the_traceback_before_the_error_line() -> None:
    env = demo_env(OPENAI_BASE_URL="http://127.0.0.1:1/v1")
    outcome = await llama_agents_cli("-v", "demo", "--broker", "embedded", env=env)
    assert outcome.code == 1
    assert "Traceback" in outcome.stderr and "ConfigurationError" in outcome.stderr
    assert outcome.stderr.splitlines()[-1].startswith("Error: OPENAI_BASE_URL=")


# -- how a failure is put in one line ---------------------------------------------------------


def test_a_failure_is_described_in_one_line() -> None:
    assert describe(ControlPlaneUnavailableError("cannot\n  reach it")) == "cannot reach it"
    # An exception group holding one error (asyncio.TaskGroup) is that error.
    group = ExceptionGroup("unhandled", [ControlPlaneUnavailableError("gone")])
    assert describe(group) == "gone"
    # Errors from outside the library are named; an unexpected one points at -v.
    assert describe(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert describe(KeyError("x")) == "KeyError: 'x' (run `llama-agents -v ...` to see where)"
