"""What every service shares: a name and a description, its own message type (its queue),
registration with the queue and the control plane, and publishing its results."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import Any

import httpx
from llama_index.core.llms import ChatMessage

from llama_agents._settings import env_str
from llama_agents.errors import ControlPlaneError, MessageDecodeError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_consumers.callable import CallableMessageConsumer
from llama_agents.message_consumers.remote import RemoteMessageConsumer
from llama_agents.message_queues.base import CONTROL_PLANE_MESSAGE_TYPE, BaseMessageQueue
from llama_agents.messages import (
    ActionTypes,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
    validate_routing_key,
)

logger = logging.getLogger("llama_agents.services")


class BaseService(ABC):
    """A long-running worker that consumes the messages sent to `service_name`.

    Args:
        message_queue: the fabric it consumes from and publishes to.
        service_name: its name, which is also its message type and queue.
        description: what it is good for (an orchestrating LLM reads this).
        prompt: optional chat messages describing how to use it.
        host, port: where it is served (`launch_server`).
        max_concurrent_tasks: messages it handles at once (its consumer's prefetch).
    """

    def __init__(
        self,
        message_queue: BaseMessageQueue,
        service_name: str,
        description: str,
        *,
        prompt: list[ChatMessage] | None = None,
        host: str | None = None,
        port: int | None = None,
        max_concurrent_tasks: int = 10,
    ) -> None:
        if max_concurrent_tasks < 1:
            raise ValueError(f"max_concurrent_tasks must be at least 1, got {max_concurrent_tasks}")
        self.message_queue = message_queue
        self.service_name = validate_routing_key(service_name)
        self.description = description
        self.prompt = prompt or []
        self.host = host or env_str("SERVICE_HOST", "127.0.0.1")
        self.port = port
        self.max_concurrent_tasks = max_concurrent_tasks
        self._consumer: BaseMessageQueueConsumer | None = None
        self._consuming: asyncio.Task[None] | None = None

    @property
    def service_definition(self) -> ServiceDefinition:
        """What this service tells the control plane about itself."""
        return ServiceDefinition(
            service_name=self.service_name,
            description=self.description,
            prompt=self.prompt,
            host=self.host,
            port=self.port,
        )

    @property
    def publisher_id(self) -> str:
        return self.service_name

    async def process_message(self, message: QueueMessage, **kwargs: Any) -> None:
        """Handle one message sent to this service; raise to have it retried.

        The default handles NEW_TASK: run the step (`run_task`) and send its result to the
        control plane. Services that take other messages override this.
        """
        if message.action is not ActionTypes.NEW_TASK:
            raise self._unsupported(message)
        result = await self.run_task(TaskDefinition.from_data(message.data))
        await self.publish(
            QueueMessage(
                type=CONTROL_PLANE_MESSAGE_TYPE,
                action=ActionTypes.COMPLETED_TASK,
                data=result.model_dump(mode="json"),
            )
        )

    @abstractmethod
    async def run_task(self, task: TaskDefinition) -> TaskResult:
        """Do one step of a task; report a failure in `TaskResult.error`, do not raise."""

    def as_consumer(self, remote: bool = False) -> BaseMessageQueueConsumer:
        """This service as a consumer of its own message type (in-process, or its URL)."""
        if remote:
            if self.port is None:
                raise ControlPlaneError(
                    f"service {self.service_name!r} has no port to be reached at"
                )
            return RemoteMessageConsumer(
                url=f"http://{self.host}:{self.port}/process_message",
                message_type=self.service_name,
                prefetch=self.max_concurrent_tasks,
            )
        return CallableMessageConsumer(
            handler=self.process_message,
            message_type=self.service_name,
            prefetch=self.max_concurrent_tasks,
        )

    async def register_to_message_queue(self) -> StartConsumingCallable:
        """Declare this service's queue now; return the callable that starts consuming."""
        if self._consumer is None:
            self._consumer = self.as_consumer()
        return await self.message_queue.register_consumer(self._consumer)

    async def deregister_from_message_queue(self) -> None:
        """Stop consuming, after the messages being handled are finished."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await self.message_queue.deregister_consumer(consumer)

    async def register_to_control_plane(self, control_plane_url: str) -> None:
        """Tell the control plane at `control_plane_url` that this service exists."""
        url = control_plane_url.rstrip("/") + "/services/register"
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.post(
                    url, json=self.service_definition.model_dump(mode="json")
                )
        except httpx.HTTPError as exc:
            raise ControlPlaneError(
                f"cannot reach the control plane at {control_plane_url}: {exc}"
            ) from exc
        if not response.is_success:
            raise ControlPlaneError(
                f"the control plane refused to register {self.service_name!r}: "
                f"{response.status_code} {response.text[:200]}"
            )

    async def launch_local(self) -> asyncio.Task[None]:
        """Register with the queue and consume in the background; returns that task."""
        start_consuming = await self.register_to_message_queue()
        self._consuming = asyncio.create_task(
            start_consuming(), name=f"service-{self.service_name}"
        )
        return self._consuming

    async def publish(self, message: QueueMessage) -> None:
        """Publish as this service."""
        message.publisher_id = self.publisher_id
        await self.message_queue.publish(message)

    def _unsupported(self, message: QueueMessage) -> MessageDecodeError:
        """The error for a message this service cannot handle (it is dead-lettered at once)."""
        return MessageDecodeError(
            f"service {self.service_name!r} does not handle {message.action!r} messages",
            raw=message.encode(),
            field="action",
        )
