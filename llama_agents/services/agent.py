"""`AgentService`: a llama-index workflow agent served on the mesh, a case of `WorkflowService`.

Each task runs with a fresh context, so nothing one task said leaks into the next (a
session's tasks continue theirs); up to `max_concurrent_tasks` run at once. The answer and
the chat history go back to the control plane as a COMPLETED_TASK; an agent that raises gives
a failed step with the error text (naming the LLM that failed, where one did) and its history,
and the service keeps running. Its runs stream their events, checkpoint, wait for input and
resume like any workflow's.
"""

from __future__ import annotations

import logging
from typing import Any

from llama_index.core.agent.workflow import AgentOutput
from llama_index.core.llms import ChatMessage
from llama_index.core.memory import BaseMemory
from workflows import Context, Workflow

from llama_agents.errors import ConfigurationTypeError
from llama_agents.llms.errors import describe_llm_failure
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import QueueMessage, TaskDefinition, TaskResult
from llama_agents.services.base import BaseService, failed_result
from llama_agents.services.workflow import WorkflowService
from llama_agents.services.workflow_codec import to_json
from llama_agents.services.workflow_run import RunEnd, RunOutcome

logger = logging.getLogger("llama_agents.services")


class AgentService(WorkflowService):
    """Runs `agent` (a `FunctionAgent`, `ReActAgent`, `AgentWorkflow` or any llama-index
    workflow whose result is the answer) for every task sent to `service_name`."""

    service_kind = "agent"

    def __init__(
        self,
        agent: Workflow,
        message_queue: BaseMessageQueue,
        description: str = "Useful for getting the next step in a task.",
        service_name: str = "default_agent",
        *,
        prompt: list[ChatMessage] | None = None,
        host: str | None = None,
        port: int | None = None,
        max_concurrent_tasks: int = 10,
        idle_release_s: float | None = 60.0,
        event_coalesce_s: float = 0.05,
        step_timeout: float | None = None,
    ) -> None:
        if not isinstance(agent, Workflow):
            raise ConfigurationTypeError(
                "agent must be a llama-index workflow agent (FunctionAgent, ReActAgent, "
                f"AgentWorkflow, ...), got {type(agent).__name__}"
            )
        super().__init__(
            agent,
            message_queue,
            service_name,
            description,
            max_concurrent_runs=max_concurrent_tasks,
            idle_release_s=idle_release_s,
            event_coalesce_s=event_coalesce_s,
            step_timeout=step_timeout,
            prompt=prompt,
            host=host,
            port=port,
            text_field="user_msg",  # as `agent.run(user_msg=...)`, for any workflow served
        )
        self.agent = agent

    async def handle_step(self, message: QueueMessage, task: TaskDefinition) -> None:
        """A workflow run; but a subclass that overrides `run_task` is served through it,
        as before agents were workflow services (its steps stream no events)."""
        if type(self).run_task is not AgentService.run_task:
            await BaseService.handle_step(self, message, task)
            return
        await super().handle_step(message, task)

    async def result_of(self, task: TaskDefinition, outcome: RunOutcome) -> TaskResult:
        """The answer as text, with the agent's chat history for this task."""
        history = await _history(outcome.context) if outcome.context is not None else []
        if outcome.end is RunEnd.FAILED:
            if outcome.exception is not None:
                error = describe_llm_failure(outcome.exception, _llm_of(self.agent))
            else:
                error = outcome.error or "the agent failed"
            logger.warning("agent %s failed on task %s: %s", self.service_name, task.task_id, error)
            return failed_result(task, error, history=history)
        return TaskResult(
            task_id=task.task_id,
            step_id=task.step_id,
            result=_answer(outcome.result),
            history=history,
            data={"result": to_json(outcome.result)},
        )

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        """Run the agent on one task in this process, in a fresh context (for direct use)."""
        ctx = Context(self.agent)
        try:
            output = await self.agent.run(user_msg=task.input, ctx=ctx)
        except Exception as exc:
            error = describe_llm_failure(exc, _llm_of(self.agent))
            return failed_result(task, error, history=await _history(ctx))
        return TaskResult(
            task_id=task.task_id,
            step_id=task.step_id,
            result=_answer(output),
            history=await _history(ctx),
        )


def _llm_of(agent: Workflow) -> Any:
    """The agent's LLM (an `AgentWorkflow`'s root agent's), to name it when it fails."""
    llm = getattr(agent, "llm", None)
    if llm is None and isinstance(getattr(agent, "agents", None), dict):
        root = agent.agents.get(getattr(agent, "root_agent", None))  # type: ignore[attr-defined]
        llm = getattr(root, "llm", None)
    return llm


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
