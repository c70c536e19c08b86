"""Tests that stop the shared broker or database run alone when pytest-xdist runs tests in
parallel (`pytest -n 2`).

Every test holds a readers-writer lock across the workers for its whole run protocol (setup,
call, teardown): a test marked with one of `EXCLUSIVE_MARKERS` holds it exclusively, every
other test shares it. The lock is two `flock`ed files: the gate stops new shared holders
while an exclusive one waits, so a busy worker cannot starve it.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

#: Markers of tests that stop the local broker or database (every other test would see it
#: go), or start a three-node cluster (the machine's cores are theirs for a while).
EXCLUSIVE_MARKERS = ("broker_restart", "postgres_restart", "rabbitmq_cluster")


def lock_paths(run_id: str) -> tuple[Path, Path]:
    """The gate and the lock files of one run of the tests (`run_id`: xdist's test run uid)."""
    base = Path(tempfile.gettempdir()) / f"llama-agents-tests-{run_id}"
    return base.with_suffix(".gate"), base.with_suffix(".lock")


class RunLock:
    """One worker's handle on the run's readers-writer lock."""

    def __init__(self, run_id: str) -> None:
        gate, lock = lock_paths(run_id)
        self._gate: IO[str] = gate.open("a")
        self._lock: IO[str] = lock.open("a")

    def is_exclusive(self, item: pytest.Item) -> bool:
        return any(item.get_closest_marker(name) for name in EXCLUSIVE_MARKERS)

    @contextmanager
    def held(self, *, exclusive: bool) -> Iterator[None]:
        if exclusive:
            fcntl.flock(self._gate, fcntl.LOCK_EX)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        else:
            fcntl.flock(self._gate, fcntl.LOCK_SH)
            fcntl.flock(self._lock, fcntl.LOCK_SH)
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(self._gate, fcntl.LOCK_UN)

    def close(self) -> None:
        self._gate.close()
        self._lock.close()
