"""Services the workflow process tests serve with `llama-agents serve service <this>:<factory>`.

Each replica is its own process, as in a container. `LLAMA_AGENTS_TEST_LEDGER` names a file
where every step run is written down (with `LLAMA_AGENTS_TEST_REPLICA`), so a test counts how
often each step ran and where.
"""

from __future__ import annotations

import os

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.llms.openai import OpenAI

from llama_agents import AgentService, RabbitMQMessageQueue, WorkflowService
from tests.support.workflows import Review


def _idle_release() -> float:
    return float(os.environ.get("LLAMA_AGENTS_TEST_IDLE_RELEASE", "60"))


def build_review() -> WorkflowService:
    return WorkflowService(
        Review(),
        RabbitMQMessageQueue(),
        service_name="review",
        description="Drafts a note and asks a person to approve it.",
        idle_release_s=_idle_release(),
        event_coalesce_s=0,
    )


def build_chat() -> AgentService:
    """A FunctionAgent on the test's scripted OpenAI-compatible server."""
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
        description="Chats, remembering the session.",
        service_name="chat",
        idle_release_s=_idle_release(),
    )
