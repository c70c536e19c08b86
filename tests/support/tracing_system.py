"""The systems the tracing tests serve with `llama-agents serve`: a pipeline of two services,
and an LLM orchestrator routing to an agent that calls a tool.

`agent` is a FunctionAgent on the test's scripted OpenAI-compatible server
(`LLAMA_AGENTS_TEST_LLM_BASE`), through llama-index's own OpenAI client, so its LLM calls are
llama-index spans (one step at a time); `shout` is a plain component.
"""

from __future__ import annotations

import os

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai import OpenAI

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    ComponentService,
    Pipeline,
    PipelineOrchestrator,
    RabbitMQMessageQueue,
    ServiceStep,
)


def build_orchestrator() -> PipelineOrchestrator:
    return PipelineOrchestrator(Pipeline.sequence(ServiceStep("agent"), ServiceStep("shout")))


def build_agent() -> AgentService:
    llm = OpenAI(
        model="gpt-4o-mini",
        api_key="sk-test",
        api_base=os.environ["LLAMA_AGENTS_TEST_LLM_BASE"],
        max_retries=0,
        timeout=10,
    )
    return AgentService(
        FunctionAgent(tools=[], llm=llm),
        RabbitMQMessageQueue(),
        description="Answers.",
        service_name="agent",
        # One step at a time: tasks finish one by one, so a broker restart falls mid-run.
        max_concurrent_tasks=1,
    )


async def _shout(text: str) -> str:
    return text.upper()


def build_shout() -> ComponentService:
    return ComponentService(
        component=_shout,
        message_queue=RabbitMQMessageQueue(),
        description="Shouts.",
        service_name="shout",
    )


def _scripted_llm() -> OpenAI:
    return OpenAI(
        model="gpt-4o-mini",
        api_key="sk-test",
        api_base=os.environ["LLAMA_AGENTS_TEST_LLM_BASE"],
        max_retries=0,
        timeout=10,
    )


def build_llm_orchestrator() -> AgentOrchestrator:
    """An LLM orchestrator on the scripted server: its decisions are LLM calls."""
    return AgentOrchestrator(llm=_scripted_llm())


def lookup(query: str) -> str:
    """Looks up a fact about llamas."""
    return "a cria"


def build_tool_agent() -> AgentService:
    """The agent with a tool: the scripted LLM calls it before answering."""
    return AgentService(
        FunctionAgent(tools=[FunctionTool.from_defaults(fn=lookup)], llm=_scripted_llm()),
        RabbitMQMessageQueue(),
        description="Answers questions about llamas.",
        service_name="agent",
    )
