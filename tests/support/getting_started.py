"""The README's Getting Started system, built as the README builds it, on any LLM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    BaseMessageQueue,
    ControlPlaneServer,
)
from tests.support.llm_server import (
    RuleBook,
    answer,
    answer_with_tool_results,
    call,
    when_no_tool_result,
    when_tool_offered,
    when_tool_result,
    when_user_says,
)

SECRET = "The secret fact is: A baby llama is called a 'Cria'."
QUESTION = "What is the secret fact?"


class SecretTool:
    """The README's tool, counting its calls so tests know it really ran."""

    def __init__(self) -> None:
        self.calls = 0

    def get_the_secret_fact(self) -> str:
        """Returns the secret fact."""
        self.calls += 1
        return SECRET

    def tool(self) -> FunctionTool:
        return FunctionTool.from_defaults(fn=self.get_the_secret_fact, name="get_the_secret_fact")


def readme_rules(*, finalize_with_tool: bool = True) -> RuleBook:
    """How a sensible model plays the README's scenario, for the orchestrator and agents."""
    finish = (
        call("finalize", {"input": SECRET}) if finalize_with_tool else answer_with_tool_results()
    )
    return RuleBook(
        [
            # The orchestrator: route to the right service, then finish.
            (
                when_tool_offered("secret_fact_agent") & when_tool_result("secret_fact_agent"),
                finish,
            ),
            (
                when_tool_offered("secret_fact_agent") & when_user_says("secret"),
                call("secret_fact_agent", {"input": QUESTION}),
            ),
            (
                when_tool_offered("dumb_fact_agent") & when_tool_result("dumb_fact_agent"),
                answer_with_tool_results(),
            ),
            (
                when_tool_offered("dumb_fact_agent"),
                call("dumb_fact_agent", {"input": "Tell me a dumb fact."}),
            ),
            # The secret-fact agent: use its tool, then answer with what it said.
            (
                when_tool_offered("get_the_secret_fact") & when_no_tool_result(),
                call("get_the_secret_fact", {}),
            ),
            (when_tool_result("get_the_secret_fact"), answer_with_tool_results()),
        ],
        # The dumb-fact agent has no tools.
        default=answer("Llamas hum when they are curious."),
    )


AgentFactory = Callable[..., Any]

AGENTS: dict[str, AgentFactory] = {"function": FunctionAgent, "react": ReActAgent}


def build_readme_system(
    message_queue: BaseMessageQueue,
    make_llm: Callable[[], Any],
    secret_tool: SecretTool,
    *,
    agent_kind: str = "function",
    streaming: bool = True,
) -> tuple[list[AgentService], ControlPlaneServer]:
    """The README's components, with agents built the llama-index 0.14 way."""
    agent_class = AGENTS[agent_kind]
    agent1 = agent_class(tools=[secret_tool.tool()], llm=make_llm(), streaming=streaming)
    agent2 = agent_class(tools=[], llm=make_llm(), streaming=streaming)
    control_plane = ControlPlaneServer(
        message_queue=message_queue,
        orchestrator=AgentOrchestrator(llm=make_llm()),
    )
    agent_server_1 = AgentService(
        agent=agent1,
        message_queue=message_queue,
        description="Useful for getting the secret fact.",
        service_name="secret_fact_agent",
    )
    agent_server_2 = AgentService(
        agent=agent2,
        message_queue=message_queue,
        description="Useful for getting random dumb facts.",
        service_name="dumb_fact_agent",
    )
    return [agent_server_1, agent_server_2], control_plane
