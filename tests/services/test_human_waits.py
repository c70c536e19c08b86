"""A person may answer tomorrow: a `HumanService` step waits without holding a delivery.

Its task shows the question (`waiting_for_input`); an answer sent through the control plane
reaches the request while it is held, and after `release_after_s` the request is released
(the step acknowledged, nothing held) and the answer, whenever it comes, completes the task."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from llama_agents import ActionTypes, HumanService, QueueMessage, TaskStatus
from llama_agents.errors import HumanRequestNotFoundError
from llama_agents.messages.runs import RunInput
from llama_agents.services.human import HumanRequest
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE, StepsObserved
from tests.support.workflows import mesh


class ReleaseWatched(HumanService):
    """A human service that calls `on_release` just before it publishes a release."""

    async def publish(self, message: QueueMessage) -> None:
        if message.action == ActionTypes.RUN_UPDATE and message.data.get("released"):
            await self.on_release(message)
        await super().publish(message)

    async def on_release(self, message: QueueMessage) -> None:
        """The release update `message` is about to go out."""


class ObservedHumanService(StepsObserved, ReleaseWatched):
    """A human service that says when it has handled a step, and what it still listed when
    it published its release."""

    listed_at_release: list[HumanRequest] | None = None

    async def on_release(self, message: QueueMessage) -> None:
        self.listed_at_release = self.pending()


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


class AnsweredWhileReleasing(ReleaseWatched):
    """A human service whose request is answered, on the replica and through the control
    plane, in the moment between its withdrawal and its release being reported."""

    def __init__(self, *args: Any, http: httpx.AsyncClient, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = http
        self.bounced = asyncio.Event()
        self.direct_answer: str | None = None
        self.answer_status: int | None = None

    async def on_release(self, message: QueueMessage) -> None:
        request_id = message.data["checkpoint"]["request"]["id_"]
        try:
            self.answer(request_id, "approved here")
            self.direct_answer = "taken"
        except HumanRequestNotFoundError:
            self.direct_answer = "refused"
        sent = await self.http.post(f"/tasks/{message.data['task_id']}/events", json=ANSWER)
        self.answer_status = sent.status_code
        await asyncio.wait_for(self.bounced.wait(), DEADLINE)

    async def on_run_input(self, run_input: RunInput) -> None:
        await super().on_run_input(run_input)
        self.bounced.set()


async def test_answers_given_while_a_request_is_released_are_refused_or_kept(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    """Once the request is being released, the replica refuses an answer for it (it would
    reach no one); one sent through the control plane reaches the replica, comes back, and
    is kept for the released run, which the control plane resumes with it."""
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        operator = AnsweredWhileReleasing(
            queue, service_name="operator", fn_input=nobody, release_after_s=0.05, http=m.http
        )
        await operator.launch_local()
        await m.control_plane.register_service(operator.service_definition)
        task_id = await m.create("ship the release?", service="operator")
        done = await m.control_plane.wait_for_task(task_id, timeout=DEADLINE)
        assert operator.direct_answer == "refused", "not taken, then lost"
        assert operator.answer_status == 202 and operator.bounced.is_set()
        assert done.status is TaskStatus.COMPLETED
        assert done.result is not None and done.result.result == "approved"
        await operator.deregister_from_message_queue()
