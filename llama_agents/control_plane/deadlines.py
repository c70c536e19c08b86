"""Step deadlines: a step that never comes back must not hang its task.

One timer per task, set to its earliest open step's deadline; when it fires the control plane
checks the task again (under its lock) and fails it if the step is still open. Timers are
`loop.call_at` handles, nothing polls; a restarted control plane sets them again from the
stored steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from llama_agents.messages.envelope import utc_now


class Deadlines:
    """Calls `on_expired(task_id)` once the task's deadline passed (unless moved or cleared)."""

    def __init__(self, on_expired: Callable[[str], None]) -> None:
        self._on_expired = on_expired
        self._timers: dict[str, tuple[datetime, asyncio.TimerHandle]] = {}

    def set(self, task_id: str, deadline: datetime | None) -> None:
        """Expire `task_id` at `deadline` (None: never); replaces its previous deadline."""
        current = self._timers.get(task_id)
        if current is not None and current[0] == deadline:
            return
        self.clear(task_id)
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, (deadline - utc_now()).total_seconds())
        handle = loop.call_at(loop.time() + delay, self._expire, task_id)
        self._timers[task_id] = (deadline, handle)

    def clear(self, task_id: str) -> None:
        current = self._timers.pop(task_id, None)
        if current is not None:
            current[1].cancel()

    def close(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def __len__(self) -> int:
        return len(self._timers)

    def _expire(self, task_id: str) -> None:
        self._timers.pop(task_id, None)
        self._on_expired(task_id)
