"""Writes that another control-plane replica may beat: run them again on fresh state.

On a shared store several control planes write the same tasks. A save fenced by version
fails with `ConcurrentUpdateError` when someone else saved first; the failed writer's cached
copy is dropped, so running the whole operation again reads what the store now holds and
decides anew (a result already recorded is then seen as recorded). On a single-writer store
(SQLite) a conflict never happens and this costs nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from llama_agents.errors import ConcurrentUpdateError

logger = logging.getLogger("llama_agents.control_plane")

#: Tries of an operation before its conflict is raised: each retry reads fresh state, so
#: only a task written by other replicas this many times in a row gets that far.
CONFLICT_ATTEMPTS = 8

P = ParamSpec("P")
T = TypeVar("T")


def retry_on_conflict(
    operation: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run `operation` again, from the start, while its save loses to a concurrent one."""

    @functools.wraps(operation)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        for _ in range(CONFLICT_ATTEMPTS - 1):
            try:
                return await operation(*args, **kwargs)
            except ConcurrentUpdateError as exc:
                logger.debug("%s lost a write race (%s); again", operation.__qualname__, exc)
        return await operation(*args, **kwargs)  # the last try: its conflict is raised

    return run
