"""The README's "Getting Started" and "Local / Notebook Flow", on both queues, through the
real llama-index OpenAI client talking to a scripted OpenAI-compatible server."""

from __future__ import annotations

import pytest

from llama_agents import LocalLauncher, SimpleMessageQueue, TaskFailedError, TaskTimeoutError
from llama_agents._sync import run_sync
from tests.conftest import QueueFactory
from tests.support.getting_started import (
    QUESTION,
    SECRET,
    SecretTool,
    build_readme_system,
    readme_rules,
)
from tests.support.llm_server import Fail, RuleBook, ScriptedLLMServer, always

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
@pytest.mark.parametrize("agent_kind", ["function", "react"])
async def test_getting_started_local_flow(
    queue_factory: QueueFactory,
    scripted_llm: ScriptedLLMServer,
    agent_kind: str,
    streaming: bool,
) -> None:
    scripted_llm.respond = readme_rules()
    message_queue = await queue_factory()
    secret = SecretTool()
    services, control_plane = build_readme_system(
        message_queue, scripted_llm.llm, secret, agent_kind=agent_kind, streaming=streaming
    )
    launcher = LocalLauncher(services, control_plane, message_queue)

    result = await launcher.alaunch_single(QUESTION, timeout=60)

    assert result == SECRET
    assert secret.calls == 1
    # Orchestrator: route, then finalize; agent: call the tool, then answer.
    assert scripted_llm.request_count == 4


async def test_task_record_holds_steps_and_histories(
    queue_factory: QueueFactory, scripted_llm: ScriptedLLMServer
) -> None:
    scripted_llm.respond = readme_rules()
    message_queue = await queue_factory()
    services, control_plane = build_readme_system(message_queue, scripted_llm.llm, SecretTool())
    record = await LocalLauncher(services, control_plane, message_queue).arun_task(QUESTION)

    assert record.status.value == "completed"
    [step] = record.steps
    assert step.service == "secret_fact_agent"
    assert step.result is not None and step.result.result == SECRET
    # The agent's own history: the question, its tool call, the tool output, the answer.
    agent_roles = [m.role.value for m in step.result.history]
    assert agent_roles[0] == "user" and agent_roles[-1] == "assistant"
    assert "tool" in agent_roles
    # The orchestrator's history, in the final result: question, routing, answer, finalize.
    assert record.result is not None
    orchestrator_roles = [m.role.value for m in record.result.history]
    assert orchestrator_roles == ["user", "assistant", "tool", "assistant"]


async def test_launch_single_can_run_again(
    queue_factory: QueueFactory, scripted_llm: ScriptedLLMServer
) -> None:
    scripted_llm.respond = readme_rules(finalize_with_tool=False)
    message_queue = await queue_factory()
    secret = SecretTool()
    services, control_plane = build_readme_system(message_queue, scripted_llm.llm, secret)
    launcher = LocalLauncher(services, control_plane, message_queue)
    assert await launcher.alaunch_single(QUESTION, timeout=60) == SECRET
    assert await launcher.alaunch_single(QUESTION, timeout=60) == SECRET
    assert await launcher.alaunch_single("Tell me a dumb fact", timeout=60) == (
        "Llamas hum when they are curious."
    )
    assert secret.calls == 2


def test_readme_sync_launch_single() -> None:
    """`launcher.launch_single(...)` as the README calls it, from plain sync code."""
    server = ScriptedLLMServer(readme_rules())
    run_sync(server.start())  # the server lives on the same background loop as the launcher
    try:
        message_queue = SimpleMessageQueue()
        secret = SecretTool()
        services, control_plane = build_readme_system(message_queue, server.llm, secret)
        launcher = LocalLauncher(services, control_plane, message_queue)
        result = launcher.launch_single("What is the secret fact?")
        print(f"Result: {result}")
        assert result == SECRET
        assert launcher.launch_single("What is the secret fact?") == SECRET
    finally:
        run_sync(server.stop())


async def test_a_failing_llm_fails_the_task_with_a_clear_error(
    queue_factory: QueueFactory, scripted_llm: ScriptedLLMServer
) -> None:
    scripted_llm.respond = RuleBook([(always(), Fail(503, "the model is overloaded"))])
    message_queue = await queue_factory()
    services, control_plane = build_readme_system(message_queue, scripted_llm.llm, SecretTool())
    launcher = LocalLauncher(services, control_plane, message_queue)
    with pytest.raises(TaskFailedError, match="the model is overloaded"):
        await launcher.alaunch_single(QUESTION, timeout=60)


async def test_timeout(queue_factory: QueueFactory, scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = readme_rules()
    message_queue = await queue_factory()
    services, control_plane = build_readme_system(message_queue, scripted_llm.llm, SecretTool())
    # The secret-fact agent is registered, but nobody runs it: the task cannot finish.
    await control_plane.start(persist=False)
    await control_plane.register_service(services[0].service_definition)
    await message_queue.declare_queue("secret_fact_agent")
    launcher = LocalLauncher(services[1:], control_plane, message_queue)
    with pytest.raises(TaskTimeoutError, match=r"did not finish within 0\.5s"):
        await launcher.alaunch_single(QUESTION, timeout=0.5)


@pytest.mark.rabbitmq
async def test_local_launcher_removes_what_it_declared(
    rabbitmq_factory: QueueFactory, scripted_llm: ScriptedLLMServer, exchange_name: str
) -> None:
    from tests.support import broker

    scripted_llm.respond = readme_rules()
    message_queue = await rabbitmq_factory()
    services, control_plane = build_readme_system(message_queue, scripted_llm.llm, SecretTool())
    launcher = LocalLauncher(services, control_plane, message_queue)
    assert await launcher.alaunch_single(QUESTION, timeout=60) == SECRET
    queues = [q["name"] for q in await broker.list_json("queues", "name")]
    # Everything it created is gone but the results queue, which holds the task's final
    # result: cleanup never deletes messages (nor, so, the exchange that queue is bound to).
    assert [q for q in queues if q.startswith(exchange_name)] == [f"{exchange_name}.human"]
    assert await broker.queue_counts(message_queue.url, f"{exchange_name}.human") == (1, 0)
