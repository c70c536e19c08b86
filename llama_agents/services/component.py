"""`ComponentService`: a plain function served as a step of a task.

For the work that needs no agent: formatting, a lookup, a retriever call, a fixed prompt.
The function takes the step's input text and returns the output text; it may be async. A
sync function runs in a worker thread so it cannot stall the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from llama_index.core.llms import ChatMessage

from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import TaskDefinition, TaskResult
from llama_agents.services.base import BaseService

logger = logging.getLogger("llama_agents.services")

Component = Callable[[str], str] | Callable[[str], Awaitable[str]]


class ComponentService(BaseService):
    """Runs `component(input) -> output` for every step sent to `service_name`."""

    def __init__(
        self,
        component: Component,
        message_queue: BaseMessageQueue,
        description: str,
        service_name: str,
        *,
        prompt: list[ChatMessage] | None = None,
        host: str | None = None,
        port: int | None = None,
        max_concurrent_tasks: int = 10,
    ) -> None:
        if not callable(component):
            raise TypeError(f"component must be callable, got {type(component).__name__}")
        super().__init__(
            message_queue,
            service_name,
            description,
            prompt=prompt,
            host=host,
            port=port,
            max_concurrent_tasks=max_concurrent_tasks,
        )
        self.component = component
        self._is_async = inspect.iscoroutinefunction(component)

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        try:
            output: Any
            if self._is_async:
                output = await self.component(task.input)  # type: ignore[misc]
            else:
                output = await asyncio.to_thread(self.component, task.input)
                if inspect.isawaitable(output):
                    output = await output
        except Exception as exc:
            logger.warning(
                "component %s failed on task %s: %s", self.service_name, task.task_id, exc
            )
            return TaskResult(
                task_id=task.task_id,
                step_id=task.step_id,
                result="",
                error=f"{type(exc).__name__}: {exc}",
            )
        return TaskResult(task_id=task.task_id, step_id=task.step_id, result=str(output))
