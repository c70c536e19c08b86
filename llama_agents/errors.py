"""The library's exceptions: one root class, one subclass per thing that can go wrong.

Callers catch `LlamaAgentsError` for anything raised by llama-agents, or a subclass when
they can do something specific about it.
"""

from __future__ import annotations


class LlamaAgentsError(Exception):
    """Root of every error raised by llama-agents."""


class ConfigurationError(LlamaAgentsError, ValueError):
    """A setting or argument has a value the library cannot use."""


class MessageDecodeError(LlamaAgentsError):
    """A message body is not valid JSON or does not match its model.

    Keeps the raw body so it can be dead-lettered or logged as received.
    """

    def __init__(self, reason: str, *, raw: bytes, field: str | None = None) -> None:
        self.reason = reason
        self.raw = raw
        self.field = field
        where = f" (field {field!r})" if field else ""
        super().__init__(f"cannot decode message{where}: {reason}")


class MessageQueueError(LlamaAgentsError):
    """A message queue operation failed."""


class BrokerUnavailableError(MessageQueueError):
    """The broker could not be reached, or did not answer in time."""


class PublishTimeoutError(BrokerUnavailableError, TimeoutError):
    """A publish was not confirmed by the broker within the configured time."""


class PublishRejectedError(MessageQueueError):
    """The broker refused to take a message (a negative publisher confirm)."""


class UnroutableMessageError(MessageQueueError):
    """No queue is bound for the message's routing key, so nobody would receive it."""

    def __init__(self, routing_key: str, exchange: str | None = None) -> None:
        self.routing_key = routing_key
        self.exchange = exchange
        where = f" on exchange {exchange!r}" if exchange else ""
        super().__init__(
            f"no queue is bound for routing key {routing_key!r}{where}; "
            "register a consumer of that type (or declare its queue) before publishing"
        )


class ConsumerNotFoundError(MessageQueueError, KeyError):
    """A consumer was deregistered (or looked up) that this queue does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "consumer not found"


class ConsumerError(LlamaAgentsError):
    """A consumer failed to handle a message; the queue will retry or dead-letter it."""


class RemoteConsumerError(ConsumerError):
    """A remote consumer answered with an error status, or did not answer in time."""


class ControlPlaneError(LlamaAgentsError):
    """The control plane refused or could not carry out a request."""


class TaskNotFoundError(ControlPlaneError, KeyError):
    """No task has this id."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"no task with id {task_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class ServiceNotFoundError(ControlPlaneError, KeyError):
    """No service is registered under this name."""

    def __init__(self, service_name: str) -> None:
        self.service_name = service_name
        super().__init__(f"no service named {service_name!r} is registered")

    def __str__(self) -> str:
        return str(self.args[0])


class TaskFailedError(LlamaAgentsError):
    """A task ended as failed; `error` says why."""

    def __init__(self, error: str, task_id: str | None = None) -> None:
        self.error = error
        self.task_id = task_id
        where = f"task {task_id} failed: " if task_id else ""
        super().__init__(f"{where}{error}")


class TaskTimeoutError(LlamaAgentsError, TimeoutError):
    """A task did not finish within the time the caller allowed."""


class OrchestratorError(LlamaAgentsError):
    """An orchestrator could not decide the next step (a misconfigured pipeline, say)."""


class UnauthorizedError(ControlPlaneError):
    """The control plane refused the request: the API key is missing or wrong."""


class ControlPlaneUnavailableError(ControlPlaneError):
    """The control plane could not be reached, or did not answer in time."""


class ToolCallTimeoutError(LlamaAgentsError, TimeoutError):
    """A remote tool did not answer in time (raised when `raise_timeout=True`)."""
