"""A person may answer tomorrow: a `HumanService` step waits without holding a delivery.

Its task shows the question (`waiting_for_input`); an answer sent through the control plane
reaches the request while it is held, and after `release_after_s` the request is released
(the step acknowledged, nothing held) and the answer, whenever it comes, completes the task."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llama_agents import ActionTypes, HumanService, QueueMessage, TaskStatus
from llama_agents.services.human import HumanRequest
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE, StepsObserved
from tests.support.workflows import mesh


class ObservedHumanService(StepsObserved, HumanService):
    """A human service that says when it has handled a step, and what it still listed when
    it published its release."""

    listed_at_release: list[HumanRequest] | None = None

    async def publish(self, message: QueueMessage) -> None:
        if message.action == ActionTypes.RUN_UPDATE and message.data.get("released"):
            self.listed_at_release = self.pending()
        await super().publish(message)


ANSWER = {"type": "HumanResponseEvent", "data": {"response": "approved"}}


async def nobody(prompt: str) -> str:
    """A console nobody types into."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_a_released_request_is_answered_through_the_control_plane(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        operator = ObservedHumanService(
            queue, service_name="operator", fn_input=nobody, release_after_s=0.05
        )
        await operator.launch_local()
        await m.control_plane.register_service(operator.service_definition)
        task_id = await m.create("ship the release?", service="operator")

        manager = m.control_plane.manager
        released = await manager.wait_until(
            task_id, lambda r: r.run is not None and r.run.released, DEADLINE
        )
        assert released.status is TaskStatus.WAITING_FOR_INPUT
        summary = released.summary()
        assert (
            summary.prompt is not None and "ship the release?" in summary.prompt["data"]["prefix"]
        )
        assert operator.listed_at_release == [], "the request left this process before its release"
        assert operator.pending() == []
        # The control plane may apply the release before the step returns and is settled.
        await asyncio.wait_for(operator.step_handled.wait(), DEADLINE)
        assert operator.counters["in_flight"] == 0, "and its step was acknowledged"

        bad = await m.http.post(f"/tasks/{task_id}/events", json={"type": "HumanResponseEvent"})
        assert bad.status_code == 422, "an answer needs its response"
        sent = await m.http.post(f"/tasks/{task_id}/events", json=ANSWER)
        assert sent.status_code == 202
        done = await m.control_plane.wait_for_task(task_id, timeout=DEADLINE)
        assert done.status is TaskStatus.COMPLETED
        assert done.result is not None and done.result.result == "approved"
        await operator.deregister_from_message_queue()


async def test_a_held_request_takes_an_answer_sent_through_the_control_plane(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        operator = HumanService(queue, service_name="operator", fn_input=nobody)
        await operator.launch_local()
        await m.control_plane.register_service(operator.service_definition)
        task_id = await m.create("deploy on friday?", service="operator")
        request = await operator.wait_for_request(DEADLINE)
        assert request.task_id == task_id
        await m.control_plane.wait_for_status(
            task_id, {TaskStatus.WAITING_FOR_INPUT}, timeout=DEADLINE
        )
        sent = await m.http.post(f"/tasks/{task_id}/events", json=ANSWER)
        assert sent.json()["status"] == "sent", "straight to the replica holding the request"
        done = await m.control_plane.wait_for_task(task_id, timeout=DEADLINE)
        assert done.result is not None and done.result.result == "approved"
        assert operator.pending() == [], "the console prompt was withdrawn"
        await operator.deregister_from_message_queue()
