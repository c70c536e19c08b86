"""What an orchestrator is: it decides a task's next steps from its JSON state.

The control plane calls `get_next_messages` whenever a task may move on (when it is
created, and after each step's result was folded in with `add_result_to_state`). The
orchestrator answers with messages:

- a step: `NEW_TASK` to a service's message type, carrying a `TaskDefinition` with a
  fresh `step_id` (see `step_message`);
- the final answer: `COMPLETED_TASK` carrying the task's `TaskResult` (see
  `final_message`); the control plane sends it to the task's result key (`human`);
- nothing, while steps it already sent are still running.

A task that cannot go on raises `TaskFailedError`. State must stay plain JSON: the control
plane stores it after every call, so a restarted control plane resumes where it stopped.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from typing import Any

from llama_index.core.llms import ChatMessage
from llama_index.core.tools import BaseTool

from llama_agents.message_queues.base import HUMAN_MESSAGE_TYPE
from llama_agents.messages import ActionTypes, QueueMessage, TaskDefinition, TaskResult
from llama_agents.messages.envelope import CONTROL_PLANE_PUBLISHER


class BaseOrchestrator(ABC):
    """Decides where each step of a task goes."""

    @abstractmethod
    async def get_next_messages(
        self, task_def: TaskDefinition, tools: list[BaseTool], state: dict[str, Any]
    ) -> tuple[list[QueueMessage], dict[str, Any]]:
        """The messages that move `task_def` on, and its new state."""

    @abstractmethod
    async def add_result_to_state(
        self, result: TaskResult, state: dict[str, Any]
    ) -> dict[str, Any]:
        """Fold a step's result into the task's state."""


def step_message(
    service_name: str, step_input: str, task_def: TaskDefinition, **state: Any
) -> QueueMessage:
    """A NEW_TASK message sending one step of `task_def` to `service_name`."""
    step = TaskDefinition(
        input=step_input,
        task_id=task_def.task_id,
        step_id=str(uuid.uuid4()),
        state=dict(state),
    )
    return QueueMessage(
        type=service_name,
        action=ActionTypes.NEW_TASK,
        publisher_id=CONTROL_PLANE_PUBLISHER,
        data=step.model_dump(mode="json"),
    )


def final_message(
    task_def: TaskDefinition,
    result: str,
    history: list[ChatMessage] | None = None,
    *,
    data: dict[str, Any] | None = None,
) -> QueueMessage:
    """The COMPLETED_TASK message carrying the task's final answer."""
    task_result = TaskResult(
        task_id=task_def.task_id, result=result, history=history or [], data=data or {}
    )
    return QueueMessage(
        type=HUMAN_MESSAGE_TYPE,
        action=ActionTypes.COMPLETED_TASK,
        publisher_id=CONTROL_PLANE_PUBLISHER,
        data=task_result.model_dump(mode="json"),
    )


def is_final(message: QueueMessage) -> bool:
    """True for the message that carries a task's final answer."""
    return message.action is ActionTypes.COMPLETED_TASK
