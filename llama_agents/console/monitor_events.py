"""Following one task's event log for the monitor: live, resumed, until the task finished.

`follow_task_events` reads `GET /tasks/{id}/events` through the SDK's `stream_events` and
hands each new event to a callback. Whatever breaks the stream (a dropped connection, a
control plane restarting), it opens it again after the last sequence it saw, with backoff,
so the log shown has no gap and no duplicate. It returns after the task's `TaskFinished`
event, or when the task is unknown; the caller cancels it when the selection moves on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from llama_agents.errors import LlamaAgentsError, TaskNotFoundError
from llama_agents.messages.records import TaskEvent


class EventSource(Protocol):
    """What the follower needs of the SDK's async client."""

    def stream_events(self, task_id: str, after: int | None = None) -> AsyncIterator[TaskEvent]:
        """The task's events after `after`, ending after its `TaskFinished` event."""
        ...


async def follow_task_events(
    client: EventSource,
    task_id: str,
    *,
    received: Callable[[TaskEvent], None],
    trouble: Callable[[str], None],
    after: int = 0,
    finished: Callable[[], bool] = lambda: False,
    retry_initial: float = 0.5,
    retry_max: float = 15.0,
) -> None:
    """Hand every event of the task after sequence `after` to `received`, in order, once.

    `trouble` is told why the stream broke and when it is tried again. A stream that ends
    without the terminal event is opened again, unless `finished()` says the task ended (a
    log from before terminal events existed has none).
    """
    last = after
    delay = retry_initial
    while True:
        try:
            async for event in client.stream_events(task_id, after=last or None):
                if event.sequence <= last:
                    continue  # already shown (a resumed stream may repeat one)
                last = event.sequence
                delay = retry_initial
                received(event)
                if event.is_terminal:
                    return
        except TaskNotFoundError as exc:
            trouble(str(exc))
            return
        except Exception as exc:  # the stream broke, or was unreadable: resume it
            named = isinstance(exc, LlamaAgentsError) and str(exc)
            problem = named or f"{type(exc).__name__}: {exc}"
        else:
            if finished():
                return
            problem = "the event stream ended early"
        trouble(f"{problem} (resuming after #{last} in {delay:g}s)")
        await asyncio.sleep(delay)  # a backoff against a control plane that is away
        delay = min(delay * 2, retry_max)
