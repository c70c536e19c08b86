"""The lock that runs broker-stopping tests alone under `pytest -n 2` (support/run_lock.py)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from tests.support.run_lock import EXCLUSIVE_MARKERS, RunLock, lock_paths

#: How long a holder that must wait is given to (wrongly) get in.
BLOCKED_FOR = 0.3


@pytest.fixture
def run_id() -> Iterator[str]:
    name = uuid.uuid4().hex
    yield name
    for path in lock_paths(name):
        path.unlink(missing_ok=True)


class Holder:
    """A thread that takes the lock, says when it is in, and leaves when told."""

    def __init__(self, lock: RunLock, *, exclusive: bool) -> None:
        self.inside, self._leave = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(lock, exclusive), daemon=True)
        self._thread.start()

    def _hold(self, lock: RunLock, exclusive: bool) -> None:
        with lock.held(exclusive=exclusive):
            self.inside.set()
            self._leave.wait(10)

    def leave(self) -> None:
        """Let go, and return once the lock is released (its files may then be closed)."""
        self._leave.set()
        self._thread.join(10)
        assert not self._thread.is_alive()


def test_shared_holders_run_together_and_an_exclusive_one_runs_alone(run_id: str) -> None:
    # Each worker has its own handle (its own open files): one per thread here.
    first, second, alone = RunLock(run_id), RunLock(run_id), RunLock(run_id)
    first_holder = Holder(first, exclusive=False)
    second_holder = Holder(second, exclusive=False)
    assert first_holder.inside.wait(5) and second_holder.inside.wait(5)

    alone_holder = Holder(alone, exclusive=True)
    assert not alone_holder.inside.wait(BLOCKED_FOR)
    first_holder.leave()
    assert not alone_holder.inside.wait(BLOCKED_FOR)  # the second still runs
    second_holder.leave()
    assert alone_holder.inside.wait(5)

    # While it runs, a shared holder waits for it.
    again = Holder(first, exclusive=False)
    assert not again.inside.wait(BLOCKED_FOR)
    alone_holder.leave()
    assert again.inside.wait(5)
    again.leave()
    for lock in (first, second, alone):
        lock.close()


def test_a_waiting_exclusive_holder_is_not_starved_by_new_shared_ones(run_id: str) -> None:
    busy, alone, late = RunLock(run_id), RunLock(run_id), RunLock(run_id)
    busy_holder = Holder(busy, exclusive=False)
    assert busy_holder.inside.wait(5)
    alone_holder = Holder(alone, exclusive=True)
    assert not alone_holder.inside.wait(BLOCKED_FOR)

    # A worker's next test asks while the exclusive one waits: it waits behind it.
    late_holder = Holder(late, exclusive=False)
    assert not late_holder.inside.wait(BLOCKED_FOR)
    busy_holder.leave()
    assert alone_holder.inside.wait(5)
    assert not late_holder.inside.is_set()
    alone_holder.leave()
    assert late_holder.inside.wait(5)
    late_holder.leave()
    for lock in (busy, alone, late):
        lock.close()


def test_the_markers_of_tests_that_stop_shared_services_are_exclusive(
    request: pytest.FixtureRequest,
) -> None:
    registered = request.config.getini("markers")
    for name in EXCLUSIVE_MARKERS:
        assert any(line.startswith(f"{name}:") for line in registered), name
