"""Waiting for something that is not up yet (the broker, the control plane) with backoff.

Containers start in any order: a service may start before RabbitMQ or the control plane
answers. It retries with exponential backoff and says what it waits for, up to a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger("llama_agents.startup")


async def with_backoff(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_on: tuple[type[BaseException], ...],
    timeout: float,
    initial_delay: float = 0.25,
    max_delay: float = 5.0,
) -> T:
    """Call `attempt` until it succeeds; between failures wait 0.25, 0.5, 1 ... `max_delay`s.

    After `timeout` seconds the last error is raised as it was.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = initial_delay
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt()
        except retry_on as exc:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise
            wait = min(delay * random.uniform(0.8, 1.2), max_delay, remaining)
            logger.warning(
                "waiting for %s (attempt %d failed: %s); retrying in %.1fs", what, tries, exc, wait
            )
            await asyncio.sleep(wait)  # backoff between attempts, not a wait for an event
            delay = min(delay * 2, max_delay)
