"""An LLM that fails says which LLM (class, model) at which URL failed and why, and what
cannot succeed is not retried: a refused connection to a local server, a 401, a 404. Transient
failures (429, 5xx) are still retried.

The LLM is `default_llm()`, configured from the environment as users do, talking to the tests'
scripted OpenAI-compatible server or to a closed port.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    ControlPlaneServer,
    LocalLauncher,
    Pipeline,
    PipelineOrchestrator,
    ServiceStep,
    SimpleMessageQueue,
    TaskFailedError,
)
from llama_agents.demo import DemoBroker, run_demo
from llama_agents.llms import default_llm
from llama_agents.llms.retries import RetryPolicy
from tests.support.getting_started import SecretTool
from tests.support.llm_server import Fail, RuleBook, ScriptedLLMServer, Text, always
from tests.support.processes import free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODEL = "llama-test-8b"
SECRET_KEY = "sk-do-not-print-me"
#: Generous: the point is "not 15 s of retries", not a tight timing.
FAST = 5.0


@pytest.fixture
def llm_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "LLAMA_AGENTS_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLAMA_AGENTS_LLM_MODEL", MODEL)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    yield monkeypatch


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


async def fail_through_an_agent_service(url: str) -> tuple[str, float]:
    """A task whose only step is an agent service on `default_llm()`; its error and time."""
    queue = SimpleMessageQueue()
    agent = FunctionAgent(tools=[SecretTool().tool()], llm=default_llm())
    service = AgentService(agent, queue, "Knows the secret.", "secret_agent")
    orchestrator = PipelineOrchestrator(Pipeline.sequence(ServiceStep("secret_agent")))
    launcher = LocalLauncher([service], ControlPlaneServer(queue, orchestrator), queue)
    started = time.monotonic()
    with pytest.raises(TaskFailedError) as failed:
        await launcher.alaunch_single("What is the secret fact?", timeout=60)
    return failed.value.error, time.monotonic() - started


async def fail_through_the_orchestrator() -> tuple[str, float]:
    """A task whose AgentOrchestrator runs on `default_llm()`; its error and time."""
    queue = SimpleMessageQueue()
    agent = FunctionAgent(tools=[SecretTool().tool()], llm=default_llm())
    service = AgentService(agent, queue, "Knows the secret.", "secret_agent")
    control_plane = ControlPlaneServer(queue, AgentOrchestrator(llm=default_llm()))
    launcher = LocalLauncher([service], control_plane, queue)
    started = time.monotonic()
    with pytest.raises(TaskFailedError) as failed:
        await launcher.alaunch_single("What is the secret fact?", timeout=60)
    return failed.value.error, time.monotonic() - started


def report(what: str, error: str, seconds: float) -> None:
    print(f"{what}: {seconds:.2f}s: {error}", file=sys.stderr)


async def test_a_refused_connection_names_the_llm_and_is_not_retried(
    llm_env: pytest.MonkeyPatch,
) -> None:
    url = closed_port_url()
    llm_env.setenv("LLAMA_AGENTS_LLM_BASE_URL", url)
    for what, failing in (
        ("agent service", lambda: fail_through_an_agent_service(url)),
        ("orchestrator", fail_through_the_orchestrator),
    ):
        error, seconds = await failing()
        report(f"refused, {what}", error, seconds)
        assert MODEL in error and url in error, error
        assert "refused" in error.lower(), error
        assert SECRET_KEY not in error
        assert seconds < FAST, f"{what}: {seconds:.1f}s spent retrying a refused connection"


async def test_a_refused_api_key_names_the_llm_and_is_not_retried(
    llm_env: pytest.MonkeyPatch, scripted_llm: ScriptedLLMServer
) -> None:
    scripted_llm.respond = RuleBook(
        [(always(), Fail(401, "Incorrect API key provided", type="invalid_request_error"))]
    )
    llm_env.setenv("LLAMA_AGENTS_LLM_BASE_URL", scripted_llm.base_url)
    for what, failing in (
        ("agent service", lambda: fail_through_an_agent_service(scripted_llm.base_url)),
        ("orchestrator", fail_through_the_orchestrator),
    ):
        asked = scripted_llm.request_count
        error, seconds = await failing()
        report(f"401, {what}", error, seconds)
        assert MODEL in error and scripted_llm.base_url in error, error
        assert "401" in error and "API key" in error, error
        assert SECRET_KEY not in error
        assert scripted_llm.request_count == asked + 1, "a 401 was asked again"
        assert seconds < FAST


async def test_the_demo_says_which_llm_failed(llm_env: pytest.MonkeyPatch) -> None:
    url = closed_port_url()
    llm_env.setenv("LLAMA_AGENTS_LLM_BASE_URL", url)
    llm = default_llm()
    broker = DemoBroker(SimpleMessageQueue(), "the embedded SimpleMessageQueue")
    started = time.monotonic()
    with pytest.raises(TaskFailedError) as failed:
        await run_demo(broker, llm, timeout=60)
    seconds = time.monotonic() - started
    report("demo", str(failed.value), seconds)
    assert MODEL in str(failed.value) and url in str(failed.value)
    assert seconds < FAST


async def test_transient_failures_are_still_retried(
    llm_env: pytest.MonkeyPatch, scripted_llm: ScriptedLLMServer
) -> None:
    replies = iter(
        [
            Fail(503, "overloaded"),
            Fail(429, "slow down", type="rate_limit_error"),
            Text("Hello there."),
            Fail(502, "bad gateway"),
            Text("Hello again."),
        ]
    )
    scripted_llm.respond = lambda request: next(replies)
    llm_env.setenv("LLAMA_AGENTS_LLM_BASE_URL", scripted_llm.base_url)
    llm = default_llm()
    hello = [ChatMessage(role="user", content="Hi")]

    started = time.monotonic()
    response = await llm.achat(hello)
    report("503, 429, then an answer", "(no error)", time.monotonic() - started)
    assert response.message.content == "Hello there."
    assert scripted_llm.request_count == 3
    # The blocking client follows the same policy (run off the loop the server runs on).
    blocking = await asyncio.to_thread(llm.chat, hello)
    assert blocking.message.content == "Hello again."
    assert scripted_llm.request_count == 5


def test_what_the_retry_policy_retries() -> None:
    policy = RetryPolicy(retries=2)

    def request(host: str) -> httpx.Request:
        return httpx.Request("POST", f"http://{host}:8080/v1/chat/completions")

    refused = httpx.ConnectError("refused")
    for local in ("127.0.0.1", "localhost", "[::1]"):
        assert not policy.should_retry_error(refused, request(local), 0), local
    assert policy.should_retry_error(refused, request("llm.internal"), 0)
    assert policy.should_retry_error(httpx.ReadTimeout("slow"), request("127.0.0.1"), 0)
    assert not policy.should_retry_error(httpx.ReadTimeout("slow"), request("x"), 2)
    assert not policy.should_retry_error(ValueError("bug"), request("x"), 0)
    for status in (429, 500, 502, 503, 504):
        assert policy.should_retry_status(httpx.Response(status), 0), status
    for status in (400, 401, 403, 404, 422):
        assert not policy.should_retry_status(httpx.Response(status), 0), status
    advised = httpx.Response(429, headers={"retry-after": "1.5"})
    assert policy.delay(0, advised) == 1.5
    assert 0 < policy.delay(5) <= policy.max_delay
