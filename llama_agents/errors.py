"""The library's exceptions: one root class, one subclass per thing that can go wrong.

Callers catch `LlamaAgentsError` for anything raised by llama-agents, or a subclass when
they can do something specific about it. Where a builtin exception is the conventional
signal (a bad value, a wrong type, a missing key, a timeout, misuse of an object's state),
our class also derives from that builtin, so `except ValueError` and the like keep working.

    LlamaAgentsError
    +-- ConfigurationError              (ValueError)
    |   +-- ConfigurationTypeError      (TypeError)
    +-- LifecycleError                  (RuntimeError)
    |   +-- NotStartedError
    |   +-- StartupError
    +-- NonRetryableMessageError
    |   +-- MessageDecodeError
    +-- MessageQueueError
    |   +-- BrokerUnavailableError
    |   |   +-- PublishTimeoutError     (TimeoutError)
    |   +-- BrokerAuthenticationError   (PermissionError)
    |   +-- PublishRejectedError
    |   +-- UnroutableMessageError
    |   +-- ConsumerNotFoundError       (KeyError)
    |   +-- DeadLetterTimeoutError      (TimeoutError)
    +-- ConsumerError
    |   +-- RemoteConsumerError
    +-- ControlPlaneError
    |   +-- TaskNotFoundError           (KeyError)
    |   +-- ServiceNotFoundError        (KeyError)
    |   +-- TaskExistsError
    |   +-- UnauthorizedError
    |   +-- ControlPlaneUnavailableError
    |   +-- ControlPlaneResponseError
    |   +-- ConcurrentUpdateError
    |   +-- SessionNotFoundError        (KeyError)
    |   +-- SessionExistsError
    |   +-- TaskFinishedError
    |   +-- HandlerRunningError
    |   +-- UnknownResultKeyError       (ValueError)
    |   +-- RequestTooLargeError
    |   +-- StateStoreUnavailableError
    +-- McpServerUnavailableError       (ConnectionError)
    |   +-- McpSessionLostError
    +-- OrchestratorError
    +-- TaskFailedError
    +-- TaskTimeoutError                (TimeoutError)
    +-- ToolCallTimeoutError            (TimeoutError)
    +-- HumanServiceError
    |   +-- HumanRequestNotFoundError   (KeyError)
    |   +-- ConsoleClosedError          (EOFError)
    +-- LLMResponseError                (ValueError)
    +-- WorkflowError
        +-- WorkflowInputError          (ValueError)
        +-- EventRejectedError          (ValueError)
            +-- UnknownEventTypeError
"""

from __future__ import annotations


class LlamaAgentsError(Exception):
    """Root of every error raised by llama-agents."""


# -- using the library ------------------------------------------------------------------


class ConfigurationError(LlamaAgentsError, ValueError):
    """A setting or argument has a value the library cannot use."""


class ConfigurationTypeError(ConfigurationError, TypeError):
    """An argument is of a type the library cannot use.

    Both a `ConfigurationError` and a `TypeError`: Python code conventionally catches
    `TypeError` for a wrong argument type, and ours should not surprise it.
    """


class LifecycleError(LlamaAgentsError, RuntimeError):
    """An object was used in a state that does not allow it (before start, say)."""


class NotStartedError(LifecycleError):
    """A component was used before it was started; call its `start()` (or launch it) first."""


class StartupError(LifecycleError):
    """A server stopped before it was ready, without an error of its own to report."""


# -- messages and queues ----------------------------------------------------------------


class NonRetryableMessageError(LlamaAgentsError):
    """A handler's verdict that a message can never be handled: retrying cannot help.

    Raised from a consumer, it makes the queue dead-letter the message at once (with this
    error as the reason) instead of retrying it `max_attempts` times. Services raise it for
    an action they do not take.
    """


class MessageDecodeError(NonRetryableMessageError):
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


class BrokerAuthenticationError(MessageQueueError, PermissionError):
    """The broker refused the credentials (ACCESS_REFUSED): retrying cannot help.

    Deliberately not a `BrokerUnavailableError`, so code that waits for a broker to come up
    (the `serve` startup, the demo's fallback) reports it at once instead of retrying.
    """


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


class DeadLetterTimeoutError(MessageQueueError, TimeoutError):
    """`fetch_dead_letters(wait_for=n)` saw fewer than `n` dead letters within its timeout."""


class ConsumerError(LlamaAgentsError):
    """A consumer failed to handle a message; the queue will retry or dead-letter it."""


class RemoteConsumerError(ConsumerError):
    """A remote consumer answered with an error status, or did not answer in time."""


# -- the control plane and its clients --------------------------------------------------


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


class TaskExistsError(ControlPlaneError):
    """A task with this id was already created."""


class UnauthorizedError(ControlPlaneError):
    """The control plane refused the request: the API key is missing or wrong."""


class ControlPlaneUnavailableError(ControlPlaneError):
    """The control plane could not be reached, or did not answer in time."""


class ControlPlaneResponseError(ControlPlaneError):
    """The control plane answered with an error status the client has no better type for.

    `status_code` and `detail` (the server's own explanation) let callers act on it.
    """

    def __init__(self, status_code: int, detail: str) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"the control plane refused the request ({status_code}): {detail}")


# -- tasks, orchestrators, services -----------------------------------------------------


class OrchestratorError(LlamaAgentsError):
    """An orchestrator could not decide the next step (a misconfigured pipeline, say)."""


class TaskFailedError(LlamaAgentsError):
    """A task ended as failed; `error` says why."""

    def __init__(self, error: str, task_id: str | None = None) -> None:
        self.error = error
        self.task_id = task_id
        where = f"task {task_id} failed: " if task_id else ""
        super().__init__(f"{where}{error}")


class TaskTimeoutError(LlamaAgentsError, TimeoutError):
    """A task did not finish within the time the caller allowed."""


class ToolCallTimeoutError(LlamaAgentsError, TimeoutError):
    """A remote tool did not answer in time (raised when `raise_timeout=True`)."""


class HumanServiceError(LlamaAgentsError):
    """A human service could not be reached, or answered something unexpected."""


class HumanRequestNotFoundError(HumanServiceError, KeyError):
    """No request with this id is waiting for a person (never asked, or already answered)."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"no request {request_id!r} is waiting for a person")

    def __str__(self) -> str:
        return str(self.args[0])


class LLMResponseError(LlamaAgentsError, ValueError):
    """An LLM's answer lacks what the caller asked of it (a tool call, say)."""


class ConcurrentUpdateError(ControlPlaneError):
    """A stored record changed since it was read: the write was refused, nothing was saved."""


# -- workflows --------------------------------------------------------------------------


class WorkflowError(LlamaAgentsError):
    """A workflow run cannot be started or fed as asked."""


class WorkflowInputError(WorkflowError, ValueError):
    """A task's input cannot start this workflow (its start event needs other fields)."""


class EventRejectedError(WorkflowError, ValueError):
    """An event sent into a run is not one of the workflow's events, or its fields are wrong."""


class SessionNotFoundError(ControlPlaneError, KeyError):
    """No session has this id."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"no session with id {session_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class SessionExistsError(ControlPlaneError):
    """A session with this id was already created."""


class TaskFinishedError(ControlPlaneError):
    """The task already ended: nothing can be sent into it any more."""


class HandlerRunningError(ControlPlaneError):
    """A workflow-server API run named a handler whose current run has not finished (409)."""


class UnknownResultKeyError(ControlPlaneError, ValueError):
    """No queue takes results under this key: they would be lost."""


class UnknownEventTypeError(EventRejectedError):
    """The event's type is not one the workflow declares."""


class ConsoleClosedError(HumanServiceError, EOFError):
    """The console a person would answer on has no more input (a closed pipe, a container)."""


class RequestTooLargeError(ControlPlaneError):
    """An HTTP request body is larger than the control plane accepts (413)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"request body larger than {limit:,} bytes")


class StateStoreUnavailableError(ControlPlaneError):
    """The control plane's state store (its database server) cannot be reached, or the
    connection broke during the call.

    Transient: the store reconnects by itself once the server is back, so a later call may
    succeed. A write that raised it was not applied, unless the message says its outcome is
    unknown (the connection broke while it committed).
    """


class McpServerUnavailableError(LlamaAgentsError, ConnectionError):
    """The MCP server cannot be reached, or a session with it cannot be opened."""


class McpSessionLostError(McpServerUnavailableError):
    """The MCP session a request went out on is gone (the request is sent again on a new
    one; callers of the tool service never see this)."""
