"""`AgentService`: a llama-index workflow agent served on the message fabric.

Each task runs with a fresh `Context`, so nothing one task said leaks into the next; up to
`max_concurrent_tasks` run at once. The answer and the chat history go back to the control
plane as a COMPLETED_TASK; an agent that raises gives a failed step with the error text and
the service keeps running.
"""

from __future__ import annotations

import logging
from typing import Any

from llama_index.core.agent.workflow import AgentOutput
from llama_index.core.llms import ChatMessage
from llama_index.core.memory import BaseMemory
from llama_index.core.workflow import Context, Workflow

from llama_agents.errors import ConfigurationTypeError
from llama_agents.messages import TaskDefinition, TaskResult
from llama_agents.services.base import BaseService, failed_result

logger = logging.getLogger("llama_agents.services")


class AgentService(BaseService):
    """Runs `agent` (a `FunctionAgent`, `ReActAgent`, `AgentWorkflow` or any llama-index
    workflow whose result is the answer) for every task sent to `service_name`."""

    service_kind = "agent"

    def __init__(
        self,
        agent: Workflow,
        message_queue: Any,
        description: str = "Useful for getting the next step in a task.",
        service_name: str = "default_agent",
        *,
        prompt: list[ChatMessage] | None = None,
        host: str | None = None,
        port: int | None = None,
        max_concurrent_tasks: int = 10,
    ) -> None:
        if not isinstance(agent, Workflow):
            raise ConfigurationTypeError(
                "agent must be a llama-index workflow agent (FunctionAgent, ReActAgent, "
                f"AgentWorkflow, ...), got {type(agent).__name__}"
            )
        super().__init__(
            message_queue,
            service_name,
            description,
            prompt=prompt,
            host=host,
            port=port,
            max_concurrent_tasks=max_concurrent_tasks,
        )
        self.agent = agent

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        """Run the agent on one task, in a fresh context; never raises for the agent's errors."""
        ctx = Context(self.agent)
        try:
            output = await self.agent.run(user_msg=task.input, ctx=ctx)
        except Exception as exc:
            # Caught here rather than in BaseService: the failed step keeps the agent's history.
            logger.warning("agent %s failed on task %s: %s", self.service_name, task.task_id, exc)
            return failed_result(task, f"{type(exc).__name__}: {exc}", history=await _history(ctx))
        return TaskResult(
            task_id=task.task_id,
            step_id=task.step_id,
            result=_answer(output),
            history=await _history(ctx),
        )


def _answer(output: Any) -> str:
    if isinstance(output, AgentOutput):
        return str(output.response.content or "")
    return str(output)


async def _history(ctx: Context) -> list[ChatMessage]:
    """The agent's chat history for this task (empty for workflows without memory)."""
    try:
        memory = await ctx.store.get("memory", default=None)
    except Exception:
        return []
    if isinstance(memory, BaseMemory):
        return list(await memory.aget_all())
    return []


__all__ = ["AgentService"]
