"""`ComponentService`: a function or a llama-index component served as a step of a task.

For the work that needs no agent: formatting, a lookup, a retriever, an LLM call, a prompt.
The component takes the step's input text and gives the output text:

- a function `str -> str`, sync (run in a worker thread, so it cannot stall the event
  loop) or async;
- an `LLM`: the input is the prompt, the completion is the output;
- a retriever: the input is the query, the retrieved texts (joined) are the output;
- a query engine: the input is the query, the response is the output;
- a prompt template with one variable: the input fills it, the formatted prompt is the output.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.llms import ChatMessage
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts import BasePromptTemplate

from llama_agents.errors import ConfigurationError, ConfigurationTypeError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import TaskDefinition, TaskResult
from llama_agents.services.base import BaseService

Component = (
    Callable[[str], str]
    | Callable[[str], Awaitable[str]]
    | LLM
    | BaseRetriever
    | BaseQueryEngine
    | BasePromptTemplate
)


class ComponentService(BaseService):
    """Runs `component(input) -> output` for every step sent to `service_name`."""

    service_kind = "component"

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
        self._run = _runner(component)
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

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        output = await self._run(task.input)  # an error fails the step (BaseService)
        return TaskResult(task_id=task.task_id, step_id=task.step_id, result=output)


def _runner(component: Any) -> Callable[[str], Awaitable[str]]:
    """How to run `component` on a text, decided once when the service is built."""
    if isinstance(component, LLM):

        async def complete(text: str) -> str:
            return (await component.acomplete(text)).text

        return complete
    if isinstance(component, BaseRetriever):

        async def retrieve(text: str) -> str:
            nodes = await component.aretrieve(text)
            return "\n\n".join(node.get_content() for node in nodes)

        return retrieve
    if isinstance(component, BaseQueryEngine):

        async def query(text: str) -> str:
            return str(await component.aquery(text))

        return query
    if isinstance(component, BasePromptTemplate):
        variables = list(component.template_vars)
        if len(variables) != 1:
            raise ConfigurationError(
                f"a prompt template served as a component needs exactly one variable, "
                f"got {variables}"
            )

        async def fill(text: str) -> str:
            return component.format(**{variables[0]: text})  # type: ignore[arg-type]

        return fill
    if not callable(component):
        raise ConfigurationTypeError(
            "component must be a function, an LLM, a retriever, a query engine or a "
            f"prompt template; got {type(component).__name__}"
        )
    if inspect.iscoroutinefunction(component):

        async def call_async(text: str) -> str:
            return str(await component(text))

        return call_async

    async def call_in_thread(text: str) -> str:
        output = await asyncio.to_thread(component, text)
        if inspect.isawaitable(output):
            output = await output
        return str(output)

    return call_in_thread
