"""What tools that do their work in another service share: ask over the queue, wait for
the answer with a timeout, and hand the agent a tool output (or the error)."""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import AsyncBaseTool, ToolMetadata, ToolOutput

from llama_agents._sync import run_sync
from llama_agents.errors import ConfigurationError, ToolCallTimeoutError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import QueueMessage
from llama_agents.tools.replies import ReplyInbox


class RemoteTool(AsyncBaseTool):
    """A tool answered by the service `target` over the message queue.

    Args:
        timeout: seconds to wait for the answer.
        raise_timeout: on timeout, raise `ToolCallTimeoutError` (True) or answer the agent
            with an error output saying the call timed out (False, the default).
    """

    def __init__(
        self,
        tool_metadata: ToolMetadata,
        message_queue: BaseMessageQueue,
        target: str,
        *,
        timeout: float = 60.0,
        raise_timeout: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout}")
        self._metadata = tool_metadata
        self.message_queue = message_queue
        self.target = target
        self.timeout = timeout
        self.raise_timeout = raise_timeout

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    async def _ask(
        self, request: QueueMessage, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> QueueMessage | ToolOutput:
        """The reply to `request`, or (after the timeout) the error output to give back."""
        try:
            return await ReplyInbox.for_queue(self.message_queue).ask(request, self.timeout)
        except TimeoutError:
            message = (
                f"{self.metadata.get_name()!r} of {self.target!r} did not answer within "
                f"{self.timeout}s"
            )
            if self.raise_timeout:
                raise ToolCallTimeoutError(message) from None
            return self._output(message, args, kwargs, is_error=True)

    def _output(
        self, content: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, is_error: bool
    ) -> ToolOutput:
        return ToolOutput(
            content=content,
            tool_name=self.metadata.get_name(),
            raw_input={"args": list(args), "kwargs": kwargs},
            raw_output=content,
            is_error=is_error,
        )

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Blocking variant; agents use `acall`."""
        return run_sync(self.acall(*args, **kwargs))
