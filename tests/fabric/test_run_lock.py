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


def _hold(lock: RunLock, exclusive: bool, inside: threading.Event, leave: threading.Event) -> None:
    with lock.held(exclusive=exclusive):
        inside.set()
        leave.wait(10)


def _start(lock: RunLock, exclusive: bool) -> tuple[threading.Event, threading.Event]:
    inside, leave = threading.Event(), threading.Event()
    threading.Thread(target=_hold, args=(lock, exclusive, inside, leave), daemon=True).start()
    return inside, leave


def test_shared_holders_run_together_and_an_exclusive_one_runs_alone(run_id: str) -> None:
    # Each worker has its own handle (its own open files): one per thread here.
    first, second, alone = RunLock(run_id), RunLock(run_id), RunLock(run_id)
    first_in, first_leave = _start(first, exclusive=False)
    second_in, second_leave = _start(second, exclusive=False)
    assert first_in.wait(5) and second_in.wait(5)

    alone_in, alone_leave = _start(alone, exclusive=True)
    assert not alone_in.wait(BLOCKED_FOR)
    first_leave.set()
    assert not alone_in.wait(BLOCKED_FOR)  # the second still runs
    second_leave.set()
    assert alone_in.wait(5)

    # While it runs, a shared holder waits for it.
    again_in, again_leave = _start(first, exclusive=False)
    assert not again_in.wait(BLOCKED_FOR)
    alone_leave.set()
    assert again_in.wait(5)
    again_leave.set()
    for lock in (first, second, alone):
        lock.close()


def test_a_waiting_exclusive_holder_is_not_starved_by_new_shared_ones(run_id: str) -> None:
    busy, alone, late = RunLock(run_id), RunLock(run_id), RunLock(run_id)
    busy_in, busy_leave = _start(busy, exclusive=False)
    assert busy_in.wait(5)
    alone_in, alone_leave = _start(alone, exclusive=True)
    assert not alone_in.wait(BLOCKED_FOR)

    # A worker's next test asks while the exclusive one waits: it waits behind it.
    late_in, late_leave = _start(late, exclusive=False)
    assert not late_in.wait(BLOCKED_FOR)
    busy_leave.set()
    assert alone_in.wait(5)
    assert not late_in.is_set()
    alone_leave.set()
    assert late_in.wait(5)
    late_leave.set()
    for lock in (busy, alone, late):
        lock.close()


def test_the_markers_of_tests_that_stop_shared_services_are_exclusive(
    request: pytest.FixtureRequest,
) -> None:
    registered = request.config.getini("markers")
    for name in EXCLUSIVE_MARKERS:
        assert any(line.startswith(f"{name}:") for line in registered), name
