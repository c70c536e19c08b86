"""Running a long-lived entrypoint (a server, a service process) on the fastest event loop.

uvloop roughly halves the CPU the AMQP client and the HTTP stack spend per message; where
it is not installed (Windows), the standard loop runs the same code.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when available, else None (the default loop)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop when it is installed."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


#: The cyclic collector's thresholds while serving: a young generation of 50,000 objects
#: (Python's default is 700), then its defaults. Nearly everything a message or a request
#: allocates is freed by reference counting before a collection of that size comes; at
#: 700, the objects of the tasks in flight were promoted time and again and the full
#: collections they set off cost the control plane about 0.5 ms of CPU per task.
SERVING_GC_THRESHOLDS = (50_000, 10, 10)


def tune_gc_for_serving() -> None:
    """Take what start-up built (modules, apps, clients: most of a long-lived process's
    objects) out of the cyclic collector's sight, and collect the young generation less
    often. Called once a served process is ready, never in an application's process.

    Every full collection scans every tracked object (~200,000 after start-up, 100-200 ms
    each); frozen, they are never scanned again (they live as long as the process anyway).
    What start-up left as garbage is collected first.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)
