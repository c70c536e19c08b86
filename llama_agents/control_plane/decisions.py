"""Orchestrator decisions, off the path that records results.

An orchestrator may ask an LLM, which can take seconds or hang. Results are recorded and
acknowledged at once; deciding a task's next step runs here: at most `concurrency` decisions
at a time (1,000 new tasks do not start 1,000 LLM calls), one at a time per task (a result
that arrives while its task is being decided triggers one more decision afterwards), each
bounded by the caller's timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("llama_agents.control_plane")


class DecisionRunner:
    """Runs `decide(task_id)` for submitted tasks, bounded and serialised per task."""

    def __init__(self, decide: Callable[[str], Awaitable[None]], *, concurrency: int) -> None:
        self._decide = decide
        self._slots = asyncio.Semaphore(concurrency)
        self.concurrency = concurrency
        self._deciding: set[str] = set()
        self._again: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.waiting = 0

    def submit(self, task_id: str) -> None:
        """Decide `task_id` soon (again, if a decision for it is running now)."""
        if task_id in self._deciding:
            self._again.add(task_id)
            return
        self._deciding.add(task_id)
        task = asyncio.ensure_future(self._run(task_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        return len(self._deciding)

    async def _run(self, task_id: str) -> None:
        try:
            while True:
                self.waiting += 1
                try:
                    await self._slots.acquire()
                finally:
                    self.waiting -= 1
                try:
                    await self._decide(task_id)
                except Exception:
                    logger.exception("deciding task %s failed", task_id)
                finally:
                    self._slots.release()
                if task_id not in self._again:
                    return
                self._again.discard(task_id)
        finally:
            self._deciding.discard(task_id)

    async def close(self, timeout: float) -> None:
        """Let running decisions finish for up to `timeout` seconds, then cancel them.

        A decision cut short is made again after a restart: the task still needs one.
        """
        pending = list(self._tasks)
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still)
