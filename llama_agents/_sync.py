"""Running the async API from plain (sync) code.

Sync wrappers submit their coroutine to one event loop living in a daemon thread. Using one
loop for every call keeps loop-bound objects (connections, HTTP clients of LLMs, asyncio
primitives) valid from one call to the next, and it works even where the caller already
runs a loop (a Jupyter notebook), since the work happens on another thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="llama-agents-sync-loop", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the shared background loop and return its result (or raise its error).

    Ctrl-C cancels the coroutine.
    """
    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
        coro, _background_loop()
    )
    try:
        return future.result()
    except (KeyboardInterrupt, SystemExit):
        future.cancel()
        raise
