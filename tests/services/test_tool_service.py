"""Tool services and remote tools (`MetaServiceTool`), on both queues."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import ServiceDefinition
from llama_agents.errors import ConfigurationError, ToolCallTimeoutError
from llama_agents.services.tool import ToolService
from llama_agents.tools import MetaServiceTool
from tests.conftest import QueueFactory
from tests.support.getting_started import SECRET, SecretTool
from tests.support.helpers import DEADLINE
from tests.support.llm_server import (
    RuleBook,
    ScriptedLLMServer,
    answer_with_tool_results,
    call,
    when_no_tool_result,
    when_tool_offered,
    when_tool_result,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Rendezvous:
    """A tool that holds each call until `expected` calls are in flight together."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.inside = 0
        self.all_in = asyncio.Event()
        self.served_by: list[str] = []

    def tool(self, label: str = "") -> FunctionTool:
        async def shout(text: str) -> str:
            """Repeats the text in capitals."""
            self.inside += 1
            self.served_by.append(label)
            if self.inside >= self.expected:
                self.all_in.set()
            async with asyncio.timeout(DEADLINE):
                await self.all_in.wait()
            return text.upper()

        return FunctionTool.from_defaults(async_fn=shout, name="shout")


def failing_tool() -> FunctionTool:
    def explode(reason: str) -> str:
        """Always fails."""
        raise ValueError(f"exploded because {reason}")

    return FunctionTool.from_defaults(fn=explode)


async def serve_tools(service: ToolService) -> asyncio.Task[None]:
    return await service.launch_local()


async def test_concurrent_calls_each_get_their_own_answer(queue_factory: QueueFactory) -> None:
    service_queue = await queue_factory()
    meeting = Rendezvous(expected=2)
    service = ToolService([meeting.tool()], service_queue, service_name="tools")
    running = await serve_tools(service)
    # Two callers, each with its own queue object (on RabbitMQ: its own connection and inbox).
    caller_a, caller_b = await queue_factory(), await queue_factory()
    if caller_a is caller_b or type(caller_a).__name__ == "SimpleMessageQueue":
        caller_a = caller_b = service_queue  # the embedded queue lives in one object
    tool_a = await MetaServiceTool.from_tool_service("shout", caller_a, tool_service=service)
    tool_b = await MetaServiceTool.from_tool_service("shout", caller_b, tool_service=service)
    out_a, out_b = await asyncio.gather(tool_a.acall(text="first"), tool_b.acall(text="second"))
    assert (out_a.content, out_b.content) == ("FIRST", "SECOND")
    assert not out_a.is_error and not out_b.is_error
    assert out_a.raw_input == {"args": [], "kwargs": {"text": "first"}}
    running.cancel()


async def test_a_raising_tool_answers_with_an_error_and_the_service_lives_on(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    service = ToolService([failing_tool(), SecretTool().tool()], queue, service_name="tools")
    running = await serve_tools(service)
    explode = await MetaServiceTool.from_tool_service("explode", queue, tool_service=service)
    output = await explode.acall(reason="testing")
    assert output.is_error
    assert output.content == "Error: ValueError: exploded because testing"
    secret = await MetaServiceTool.from_tool_service(
        "get_the_secret_fact", queue, tool_service=service
    )
    assert (await secret.acall()).content == SECRET
    running.cancel()


async def test_timeout_answers_or_raises(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    service = ToolService([SecretTool().tool()], queue, service_name="asleep")
    await queue.declare_queue("asleep")  # the queue exists, but nobody consumes it
    quiet = await MetaServiceTool.from_tool_service(
        "get_the_secret_fact", queue, tool_service=service, timeout=0.3
    )
    output = await quiet.acall()
    assert output.is_error and "did not answer within 0.3s" in output.content
    loud = await MetaServiceTool.from_tool_service(
        "get_the_secret_fact", queue, tool_service=service, timeout=0.3, raise_timeout=True
    )
    with pytest.raises(ToolCallTimeoutError):
        await loud.acall()


async def test_replicas_share_the_calls(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    meeting = Rendezvous(expected=4)
    replicas = [
        ToolService([meeting.tool(label)], queue, service_name="shared", max_concurrent_tasks=2)
        for label in ("one", "two")
    ]
    running = [await serve_tools(replica) for replica in replicas]
    tool = await MetaServiceTool.from_tool_service("shout", queue, tool_service=replicas[0])
    outputs = await asyncio.gather(*(tool.acall(text=f"x{i}") for i in range(4)))
    assert sorted(o.content for o in outputs) == ["X0", "X1", "X2", "X3"]
    assert sorted(meeting.served_by) == ["one", "one", "two", "two"]
    for task in running:
        task.cancel()


async def test_agent_uses_a_remote_tool(
    queue_factory: QueueFactory, scripted_llm: ScriptedLLMServer
) -> None:
    scripted_llm.respond = RuleBook(
        [
            (
                when_tool_offered("get_the_secret_fact") & when_no_tool_result(),
                call("get_the_secret_fact", {}),
            ),
            (when_tool_result("get_the_secret_fact"), answer_with_tool_results()),
        ]
    )
    queue = await queue_factory()
    secret = SecretTool()
    service = ToolService([secret.tool()], queue, service_name="secret_tools")
    running = await serve_tools(service)
    remote = await MetaServiceTool.from_tool_service(
        "get_the_secret_fact", queue, tool_service=service
    )
    agent = FunctionAgent(tools=[remote], llm=scripted_llm.llm())
    result = await agent.run(user_msg="What is the secret fact?")
    assert str(result) == SECRET
    assert secret.calls == 1, "the tool ran in the tool service"
    running.cancel()


async def test_metadata_from_a_served_tool_service(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    service = ToolService([Rendezvous(1).tool()], queue, service_name="served_tools", port=0)
    serving = asyncio.create_task(service.launch_server())
    url = await service.wait_until_serving()
    by_url = await MetaServiceTool.from_tool_service("shout", queue, tool_service_url=url)
    assert by_url.tool_service_name == "served_tools"
    assert by_url.metadata.description.endswith("Repeats the text in capitals.")
    assert by_url.metadata.get_parameters_dict()["required"] == ["text"]
    assert (await by_url.acall(text="hi")).content == "HI"
    by_definition = await MetaServiceTool.from_tool_service(
        "shout", queue, tool_service_definition=service.service_definition
    )
    assert by_definition.metadata.get_name() == "shout"
    with pytest.raises(ConfigurationError, match="no tool named 'nope'"):
        await MetaServiceTool.from_tool_service("nope", queue, tool_service_url=url)
    with pytest.raises(ConfigurationError, match="no host and port"):
        await MetaServiceTool.from_tool_service(
            "shout",
            queue,
            tool_service_definition=ServiceDefinition(service_name="x", description=""),
        )
    service.stop_server()
    await asyncio.wait_for(serving, DEADLINE)
