"""A step whose handler raises is retried where it is, not handed back and resent; a step
that keeps coming back unrun fails its task instead of circling forever (issue 9, item 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from llama_agents import ComponentService, TaskStatus
from llama_agents.control_plane.runs import MAX_HANDBACKS
from llama_agents.messages import QueueMessage, TaskDefinition
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE
from tests.support.workflows import mesh


def _upper(text: str) -> str:
    return text.upper()


class FlakyReplica(ComponentService):
    """Its message handling raises `failures` times (a result it could not publish, say)."""

    def __init__(self, *args: object, failures: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.failures = failures
        self.handled = 0

    async def handle_step(self, message: QueueMessage, task: TaskDefinition) -> None:
        self.handled += 1
        if self.handled <= self.failures:
            raise ConnectionError("the result could not be published")
        await super().handle_step(message, task)


class CrashLoopReplica(ComponentService):
    """Sees every step as redelivered, as a replica does whose predecessor crashed on it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.handed_back = 0

    def _handback_reason(self, message: QueueMessage) -> Literal["redelivered", "stale"] | None:
        self.handed_back += 1
        return "redelivered"


async def test_a_retried_step_is_run_again_in_place_not_handed_back(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory(max_attempts=3)
    async with mesh(queue, tmp_path) as m:
        service = FlakyReplica(_upper, queue, "upper-cases", "upper", failures=2)
        await m.add(service)  # type: ignore[arg-type]
        task_id = await m.create("abc", service="upper")
        record = await m.control_plane.wait_for_status(
            task_id, {TaskStatus.COMPLETED, TaskStatus.FAILED}, timeout=DEADLINE
        )
        assert record.status is TaskStatus.COMPLETED, record.error
        assert record.result is not None and record.result.result == "ABC"
        assert service.handled == 3
        # Retried by the queue's policy: the first attempt of the step, never resent.
        [step] = record.steps
        assert (step.attempt, step.handbacks) == (1, 0)


async def test_a_step_whose_handler_always_raises_is_dead_lettered_and_fails_its_task(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory(max_attempts=3)
    async with mesh(queue, tmp_path) as m:
        service = FlakyReplica(_upper, queue, "upper-cases", "upper", failures=10**6)
        await m.add(service)  # type: ignore[arg-type]
        task_id = await m.create("abc", service="upper")
        record = await m.control_plane.wait_for_status(
            task_id, {TaskStatus.COMPLETED, TaskStatus.FAILED}, timeout=DEADLINE
        )
        assert record.status is TaskStatus.FAILED
        assert record.error is not None and "could not be published" in record.error
        assert service.handled == 3, "tried max_attempts times, then dead-lettered"


async def test_a_step_handed_back_again_and_again_fails_its_task(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        service = CrashLoopReplica(_upper, queue, "upper-cases", "upper")
        await m.add(service)  # type: ignore[arg-type]
        task_id = await m.create("abc", service="upper")
        record = await m.control_plane.wait_for_status(
            task_id, {TaskStatus.COMPLETED, TaskStatus.FAILED}, timeout=DEADLINE
        )
        assert record.status is TaskStatus.FAILED
        assert record.error is not None
        assert f"handed back unrun {MAX_HANDBACKS + 1} times" in record.error
        assert "crashing on it" in record.error
        assert service.handed_back == MAX_HANDBACKS + 1
