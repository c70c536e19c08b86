"""`AgentOrchestrator`: an LLM picks the next service by function calling.

The LLM sees one tool per registered service (its name and description) plus `finalize`.
Each service's answer is folded back into the chat history as that tool call's result.
Calls made in one turn run in parallel and are all awaited before the next turn. The whole
history (including each LLM answer that decided a step) lives in the task's JSON state, so
a control plane restarted mid-task carries on without asking the LLM again.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM
from llama_index.core.tools import BaseTool
from pydantic import BaseModel, Field

from llama_agents.errors import ConfigurationError, TaskFailedError
from llama_agents.llms.errors import describe_llm_failure, is_llm_failure
from llama_agents.messages import QueueMessage, TaskDefinition, TaskResult
from llama_agents.orchestrators.base import BaseOrchestrator, final_message, step_message
from llama_agents.orchestrators.service_tool import ServiceTool

FINALIZE_TOOL_NAME = "finalize"
STATE_VERSION = 1

DEFAULT_SYSTEM_PROMPT = (
    "You coordinate a team of services to answer the user's request. Each tool is a "
    "service: call the ones that help, with a clear input for each. When you have the "
    f"answer, reply with it directly or call `{FINALIZE_TOOL_NAME}` with the final answer."
)


class FinalizeInput(BaseModel):
    input: str = Field(description="The final answer to give the user.")


def _finalize_tool() -> ServiceTool:
    return ServiceTool(
        FINALIZE_TOOL_NAME,
        "Finish the task. Call this once the request is answered; `input` is the final "
        "answer for the user.",
        fn_schema=FinalizeInput,
    )


class AgentOrchestrator(BaseOrchestrator):
    """Lets a function-calling LLM route each step of a task to a service.

    Args:
        llm: a function-calling llama-index LLM (OpenAI, the offline LLM, ...).
        max_steps: LLM turns a task may take before it fails as looping (default 10).
        system_prompt: the instructions the LLM gets first.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        max_steps: int = 10,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        if not isinstance(llm, FunctionCallingLLM) or not llm.metadata.is_function_calling_model:
            raise ConfigurationError(
                f"AgentOrchestrator needs a function-calling LLM; {type(llm).__name__} "
                f"(model {llm.metadata.model_name!r}) is not one"
            )
        if max_steps < 1:
            raise ConfigurationError(f"max_steps must be at least 1, got {max_steps}")
        self.llm: FunctionCallingLLM = llm
        self.max_steps = max_steps
        self.system_prompt = system_prompt

    async def get_next_messages(
        self, task_def: TaskDefinition, tools: list[BaseTool], state: dict[str, Any]
    ) -> tuple[list[QueueMessage], dict[str, Any]]:
        if state.get("pending"):
            return [], state  # parallel steps still running: wait for all of them
        history = self._history(task_def, state)
        services = {tool.metadata.get_name(): tool for tool in tools}
        offered = [*tools, _finalize_tool()]
        turns = int(state.get("turns", 0))
        while True:
            if turns >= self.max_steps:
                raise TaskFailedError(
                    f"no final answer after {self.max_steps} orchestrator steps "
                    "(max_steps); the services may be looping",
                    task_def.task_id,
                )
            try:
                response = await self.llm.achat_with_tools(
                    offered, chat_history=history, allow_parallel_tool_calls=True
                )
            except Exception as exc:
                if not is_llm_failure(exc):
                    raise
                raise TaskFailedError(
                    f"the orchestrator's {describe_llm_failure(exc, self.llm)}", task_def.task_id
                ) from exc
            turns += 1
            history.append(response.message)
            calls = self.llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
            if not calls:
                answer = response.message.content or _last_tool_output(history)
                return [final_message(task_def, answer, history[1:])], _state(history, {}, turns)

            messages: list[QueueMessage] = []
            pending: dict[str, dict[str, str]] = {}
            for call in calls:
                kwargs = call.tool_kwargs if isinstance(call.tool_kwargs, dict) else {}
                if call.tool_name == FINALIZE_TOOL_NAME:
                    answer = str(kwargs.get("input") or _last_tool_output(history))
                    final = final_message(task_def, answer, history[1:])
                    return [final], _state(history, {}, turns)
                if call.tool_name not in services:
                    history.append(
                        _tool_message(
                            call.tool_id,
                            call.tool_name,
                            (
                                f"Error: there is no service named {call.tool_name!r}. "
                                f"Available: {', '.join(sorted(services)) or 'none'}."
                            ),
                        )
                    )
                    continue
                step_input = str(kwargs.get("input") or task_def.input)
                message = step_message(call.tool_name, step_input, task_def)
                step_id = str(message.data["step_id"])
                pending[step_id] = {"tool_call_id": call.tool_id, "service": call.tool_name}
                messages.append(message)
            if messages:
                return messages, _state(history, pending, turns)
            # Every call named an unknown service: let the LLM try again.

    async def add_result_to_state(
        self, result: TaskResult, state: dict[str, Any]
    ) -> dict[str, Any]:
        pending: dict[str, dict[str, str]] = dict(state.get("pending", {}))
        call = pending.pop(result.step_id or "", None)
        if call is None:
            return state  # not a step this orchestrator is waiting for
        content = f"Error from {call['service']}: {result.error}" if result.error else result.result
        history = [
            *state.get("history", []),
            _tool_message(call["tool_call_id"], call["service"], content).model_dump(mode="json"),
        ]
        return {**state, "history": history, "pending": pending}

    def _history(self, task_def: TaskDefinition, state: dict[str, Any]) -> list[ChatMessage]:
        stored = state.get("history")
        if stored:
            return [ChatMessage.model_validate(message) for message in stored]
        return [
            ChatMessage(role=MessageRole.SYSTEM, content=self.system_prompt),
            ChatMessage(role=MessageRole.USER, content=task_def.input),
        ]


def _tool_message(tool_call_id: str, name: str, content: str) -> ChatMessage:
    return ChatMessage(
        role=MessageRole.TOOL,
        content=content,
        additional_kwargs={"tool_call_id": tool_call_id, "name": name},
    )


def _last_tool_output(history: list[ChatMessage]) -> str:
    for message in reversed(history):
        if message.role == MessageRole.TOOL:
            return message.content or ""
    return ""


def _state(
    history: list[ChatMessage], pending: dict[str, dict[str, str]], turns: int
) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "history": [message.model_dump(mode="json") for message in history],
        "pending": pending,
        "turns": turns,
    }
