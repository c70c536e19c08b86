"""A service whose dependency can be down, for the dead-letter and log tests.

While it is "broken" (`broken` set, or the file `LLAMA_AGENTS_TEST_BROKEN_FILE` exists when
served as a process) its handler raises before running the step, so the step is retried and
then dead-lettered: the operator fixes the cause and replays it. It also logs, carelessly,
the broker URL and the API key it was given, as user code does: the log filter must hide
them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from llama_agents import (
    AgentOrchestrator,
    BaseService,
    OfflineLLM,
    QueueMessage,
    RabbitMQMessageQueue,
    TaskDefinition,
    TaskResult,
)
from llama_agents.message_queues.base import BaseMessageQueue

logger = logging.getLogger("tests.flaky")


class Flaky(BaseService):
    """Echoes its input in upper case, unless its dependency is down."""

    def __init__(self, queue: BaseMessageQueue, name: str = "flaky", **kwargs: Any) -> None:
        super().__init__(queue, name, "Echoes in upper case.", **kwargs)
        self.broken = False

    def _is_broken(self) -> bool:
        marker = os.environ.get("LLAMA_AGENTS_TEST_BROKEN_FILE")
        return self.broken or (marker is not None and os.path.exists(marker))

    async def process_message(self, message: QueueMessage, **kwargs: Any) -> None:
        logger.info(
            "handling with broker %s and key %s",
            os.environ.get("LLAMA_AGENTS_AMQP_URL", ""),
            os.environ.get("LLAMA_AGENTS_API_KEY", ""),
        )
        if self._is_broken():
            raise RuntimeError("the inventory database is down")
        await super().process_message(message, **kwargs)

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        return TaskResult(task_id=task.task_id, result=task.input.upper(), history=[])


def build_flaky() -> Flaky:
    return Flaky(RabbitMQMessageQueue(max_attempts=2))


def build_orchestrator() -> AgentOrchestrator:
    return AgentOrchestrator(llm=OfflineLLM())
