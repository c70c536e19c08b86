"""A run's update that reaches a control plane before the step's publish mark is stored does
not send the step again.

With control planes as replicas on one store, the replica that published a step saves its
mark once the broker confirmed it; the run's first update can reach the other replica before
that save. It read the step as never published and sent it again: the run started twice
(a CI run saw a workflow's first two steps run 21 times for 20 tasks). Here the other
replica's view is made by hand: the stored step is set back to unpublished, as it was before
the mark, and the update comes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_agents import (
    ActionTypes,
    ControlPlaneServer,
    QueueMessage,
    ServiceDefinition,
    SimpleMessageQueue,
    TaskDefinition,
    TaskStatus,
)
from llama_agents.control_plane import SqliteStateStore
from llama_agents.messages.runs import RunUpdate
from tests.support.control_plane import Worker, consuming
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator


async def test_an_update_before_the_steps_mark_does_not_send_the_step_again(
    tmp_path: Path,
) -> None:
    queue = SimpleMessageQueue()
    control_plane = ControlPlaneServer(
        queue, FanOutOrchestrator([]), SqliteStateStore(tmp_path / "cp.sqlite3")
    )
    worker = Worker(queue, "review")  # a stand-in for the workflow service
    await worker.start()
    async with consuming(control_plane):
        manager = control_plane.manager
        manager.marks.delay = 0  # as on a shared store: each mark is its own write
        publishes: list[str] = []
        publish_step = manager.dispatch.publish_step

        async def counted(record: Any, step: Any) -> None:
            publishes.append(step.step_id)
            await publish_step(record, step)

        manager.dispatch.publish_step = counted  # type: ignore[method-assign]
        await control_plane.register_service(
            ServiceDefinition(service_name="review", description="Reviews notes.")
        )
        task_id = (
            await control_plane.create_task(TaskDefinition(input="notes", service="review"))
        ).task_id
        [delivered] = await worker.steps.wait_for(1)
        step = TaskDefinition.model_validate(delivered.data)
        await manager.wait_until(task_id, lambda r: r.steps[0].published, DEADLINE)

        # What the other replica read: the step stored, its mark not yet.
        async with manager.lock(task_id):
            record = await manager.get(task_id)
            record.steps[0].published = False
            await manager.save(record)
        assert not (await manager.read(task_id)).steps[0].published

        update = RunUpdate(task_id=task_id, step_id=step.step_id or "", sequence=1, waiting=True)
        await queue.publish(
            QueueMessage(
                type="control_plane",
                action=ActionTypes.RUN_UPDATE,
                data=update.model_dump(mode="json"),
            )
        )
        record = await manager.wait_until(
            task_id, lambda r: r.status is TaskStatus.WAITING_FOR_INPUT, DEADLINE
        )
        async with manager.lock(task_id):
            pass  # the update's handling (its save, then its flush) is over
        assert publishes == [record.steps[0].step_id], "the step was sent once"
        assert (await manager.read(task_id)).steps[0].published
