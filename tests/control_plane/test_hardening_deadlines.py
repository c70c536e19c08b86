"""A step that never comes back fails its task at its deadline, with the reason; a service's
own `step_timeout` wins over the control plane's; human services have none unless they set
one; a client waiting with no timeout learns of the failure (issue 9, item 2). Both queues.

Nobody consumes the services' queues here: their steps wait there, unanswered, as they
would for a service that died or never started.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from llama_agents import (
    AsyncLlamaAgentsClient,
    HumanService,
    LlamaAgentsClient,
    ServiceDefinition,
    TaskResult,
    TaskStatus,
)
from llama_agents.messages.envelope import utc_now
from tests.conftest import QueueFactory
from tests.support.hardening import served
from tests.support.helpers import DEADLINE


async def test_an_unanswered_step_fails_its_task_at_its_deadline_and_human_steps_wait(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with served(queue, tmp_path / "cp.sqlite3", step_timeout=0.5) as system:
        # The control plane's default applies to "worker"; "patient" sets its own, which
        # wins; a human service sets none (no deadline) unless it does ("timed_person").
        await system.register(ServiceDefinition(service_name="worker", description="w"))
        await system.register(
            ServiceDefinition(service_name="patient", description="p", step_timeout=600)
        )
        person = HumanService(queue, service_name="person", timeout=None)
        timed = HumanService(queue, service_name="timed_person", timeout=0.5)
        await system.register(person.service_definition)
        await system.register(timed.service_definition)

        worker_task = await system.create("worker: do it")
        timed_task = await system.create("timed_person: approve it")
        patient_task = await system.create("patient: take your time")
        person_task = await system.create("person: approve it")
        for task_id in (patient_task, person_task):
            await system.published(task_id)

        failed = await system.finished(worker_task)
        assert failed.status is TaskStatus.FAILED
        assert failed.error is not None
        assert "sent to 'worker' got no answer within 0.5s" in failed.error, failed.error
        failed_person = await system.finished(timed_task)
        assert failed_person.status is TaskStatus.FAILED
        assert failed_person.error is not None
        assert "sent to 'timed_person' got no answer within 0.5s" in failed_person.error

        # Past both deadlines of 0.5 s: the other two still wait, as they should.
        patient = await system.control_plane.get_task(patient_task)
        waiting_person = await system.control_plane.get_task(person_task)
        assert patient.status is TaskStatus.RUNNING
        assert waiting_person.status is TaskStatus.RUNNING
        [patient_step] = patient.steps
        assert patient_step.deadline_at is not None
        assert patient_step.deadline_at > utc_now() + timedelta(seconds=500)
        [person_step] = waiting_person.steps
        assert person_step.deadline_at is None, "a human step has no deadline unless set"


def wait_blocking(url: str, task_id: str) -> TaskResult:
    with LlamaAgentsClient(url) as client:
        return client.wait_for_result(task_id)


async def test_wait_for_result_without_a_timeout_ends_when_the_task_fails(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    async with served(queue, tmp_path / "cp.sqlite3", step_timeout=0.5) as system:
        await system.register(ServiceDefinition(service_name="worker", description="w"))
        async with AsyncLlamaAgentsClient(system.url) as client:
            first = await client.create_task("worker: never answered")
            second = await client.create_task("worker: never answered either")
            # No timeout: only the task's end can end these waits (the outer deadline fails
            # the test instead of hanging it).
            async with asyncio.timeout(DEADLINE):
                result = await client.wait_for_result(first)
                sync_result = await asyncio.to_thread(wait_blocking, system.url, second)
        for got in (result, sync_result):
            assert got.error is not None
            assert "sent to 'worker' got no answer within 0.5s" in got.error, got.error
