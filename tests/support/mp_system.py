"""The system the multi-process tests run: each factory is served by `llama-agents serve`.

The secret-fact agent records every step it runs in a ledger file (`LLAMA_AGENTS_TEST_LEDGER`),
so a test can count how often each step ran and on which replica.
"""

from __future__ import annotations

import asyncio
import os

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    OfflineLLM,
    RabbitMQMessageQueue,
    TaskDefinition,
    TaskResult,
)

SECRET = "The secret fact is: A baby llama is called a 'Cria'."


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return SECRET


class LedgerAgentService(AgentService):
    """An agent service that takes a while per step and writes down each step it runs."""

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        replica = os.environ.get("LLAMA_AGENTS_TEST_REPLICA", "?")
        await asyncio.sleep(float(os.environ.get("LLAMA_AGENTS_TEST_WORK_SECONDS", "0.05")))
        result = await super().run_task(task)
        await asyncio.to_thread(_record, f"{replica} {task.task_id} {task.step_id}\n")
        return result


def _record(line: str) -> None:
    """One short O_APPEND write: lines from several processes never interleave."""
    with open(os.environ["LLAMA_AGENTS_TEST_LEDGER"], "a", encoding="utf-8") as out:
        out.write(line)


def build_secret_agent() -> AgentService:
    tool = FunctionTool.from_defaults(fn=get_the_secret_fact)
    return LedgerAgentService(
        agent=FunctionAgent(tools=[tool], llm=OfflineLLM()),
        message_queue=RabbitMQMessageQueue(),
        description="Useful for getting the secret fact.",
        service_name="secret_fact_agent",
        max_concurrent_tasks=5,
    )


def build_dumb_agent() -> AgentService:
    return AgentService(
        agent=FunctionAgent(tools=[], llm=OfflineLLM()),
        message_queue=RabbitMQMessageQueue(),
        description="Useful for getting random dumb facts.",
        service_name="dumb_fact_agent",
    )


def build_orchestrator() -> AgentOrchestrator:
    return AgentOrchestrator(llm=OfflineLLM())
