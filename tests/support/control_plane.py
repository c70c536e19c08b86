"""A control plane under test: a stand-in worker service, serving and stopping it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from llama_agents import (
    ActionTypes,
    BaseMessageQueue,
    ControlPlaneServer,
    QueueMessage,
    TaskDefinition,
    TaskResult,
)
from tests.support.helpers import DEADLINE, Collector


class Worker:
    """A stand-in service: records the steps it gets; the test decides when to answer."""

    def __init__(self, queue: BaseMessageQueue, name: str = "worker") -> None:
        self.queue = queue
        self.name = name
        self.steps = Collector()

    async def start(self) -> asyncio.Task[None]:
        start = await self.queue.register_consumer(self.steps.consumer(self.name))
        return asyncio.create_task(start())

    async def answer(self, message: QueueMessage, text: str) -> None:
        step = TaskDefinition.model_validate(message.data)
        await self.queue.publish(completion(step, text))


async def post_task(control_plane: ControlPlaneServer, text: str) -> str:
    """Create a task over the served control plane's HTTP API; its id."""
    async with httpx.AsyncClient(base_url=control_plane.url, timeout=DEADLINE) as http:
        created = await http.post("/tasks", json={"input": text})
    assert created.status_code == 200, created.text
    return str(created.json()["task_id"])


@asynccontextmanager
async def consuming(control_plane: ControlPlaneServer) -> AsyncIterator[ControlPlaneServer]:
    """`control_plane` consuming its queue (no HTTP server), closed on the way out: a process
    of its own, as far as the broker and the store can tell."""
    running = asyncio.create_task((await control_plane.register_to_message_queue())())
    try:
        yield control_plane
    finally:
        await control_plane.close()
        running.cancel()


def completion(step: TaskDefinition, text: str) -> QueueMessage:
    result = TaskResult(task_id=step.task_id, step_id=step.step_id, result=text)
    return QueueMessage(
        type="control_plane",
        action=ActionTypes.COMPLETED_TASK,
        data=result.model_dump(mode="json"),
    )


async def serve(control_plane: ControlPlaneServer) -> asyncio.Task[None]:
    task = asyncio.create_task(control_plane.launch_server())
    await control_plane.wait_until_serving()
    return task


async def stop(control_plane: ControlPlaneServer, task: asyncio.Task[None]) -> None:
    await control_plane.close()
    await asyncio.wait_for(task, DEADLINE)
