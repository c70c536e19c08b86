"""Small orchestrators for control-plane tests: explicit, no LLM."""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import BaseTool

from llama_agents import BaseOrchestrator, QueueMessage, TaskDefinition, TaskResult
from llama_agents.orchestrators import final_message, step_message


class FanOutOrchestrator(BaseOrchestrator):
    """Sends the task to every service in `services` at once; the answer joins their results.

    With one service it is the simplest possible orchestrator: one step, then done.
    """

    def __init__(self, services: list[str]) -> None:
        self.services = services
        self.decisions = 0

    async def get_next_messages(
        self, task_def: TaskDefinition, tools: list[BaseTool], state: dict[str, Any]
    ) -> tuple[list[QueueMessage], dict[str, Any]]:
        if "results" not in state:
            self.decisions += 1
            messages = [step_message(s, task_def.input, task_def) for s in self.services]
            pending = [str(m.data["step_id"]) for m in messages]
            return messages, {"pending": pending, "results": {}}
        if set(state["results"]) == set(state["pending"]):
            answer = " | ".join(state["results"][step] for step in state["pending"])
            return [final_message(task_def, answer)], state
        return [], state

    async def add_result_to_state(
        self, result: TaskResult, state: dict[str, Any]
    ) -> dict[str, Any]:
        results = dict(state["results"])
        results[result.step_id or ""] = result.error or result.result
        return {**state, "results": results}
