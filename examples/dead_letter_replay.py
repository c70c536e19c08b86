"""Dead letters as an operator's tool: a step that keeps failing is dead-lettered, its task
fails; once the cause is fixed, replaying the letter resumes the task, which completes.

A service's dependency (an "inventory database") is down: its handler raises, the step is
retried `max_attempts` times, then moved to the dead-letter queue with the reason, and the
task fails. The operator lists the dead letters, fixes the cause and replays the letter
(here through the SDK; `llama-agents dead-letters replay <id>` does the same): the message
goes back to its routing key with its attempts reset, the task reopens and completes. The
control plane's `/metrics` counted what happened.

Run it:

    .venv/bin/python examples/dead_letter_replay.py

It needs no LLM and no broker: the embedded queue, every server on a free port, state in a
temporary directory.
"""

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from llama_agents import (
    AsyncLlamaAgentsClient,
    BaseService,
    ControlPlaneServer,
    Pipeline,
    PipelineOrchestrator,
    QueueMessage,
    ServerLauncher,
    ServiceStep,
    SimpleMessageQueue,
    TaskDefinition,
    TaskResult,
)


class Inventory(BaseService):
    """Answers how many items are in stock, while its database is up."""

    def __init__(self, queue: SimpleMessageQueue) -> None:
        super().__init__(queue, "inventory", "Counts what is in stock.", port=0)
        self.database_up = False

    async def process_message(self, message: QueueMessage, **kwargs: Any) -> None:
        if not self.database_up:
            raise RuntimeError("the inventory database is down")
        await super().process_message(message, **kwargs)

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        return TaskResult(task_id=task.task_id, result=f"12 {task.input} in stock")


def failed_tasks_counted(metrics: str) -> float:
    """The control plane's count of tasks that failed, from its Prometheus text."""
    for family in text_string_to_metric_families(metrics):
        if family.name == "llama_agents_tasks_finished":
            return sum(s.value for s in family.samples if s.labels.get("status") == "failed")
    return 0.0


async def main(state_dir: Path) -> None:
    queue = SimpleMessageQueue(port=0, max_attempts=2)
    control_plane = ControlPlaneServer(
        queue,
        PipelineOrchestrator(Pipeline.sequence(ServiceStep("inventory"))),
        state_store=state_dir / "control_plane.sqlite3",
        port=0,
    )
    inventory = Inventory(queue)
    launcher = ServerLauncher([inventory], control_plane, queue)
    serving = asyncio.create_task(launcher.alaunch_servers())
    try:
        await launcher.wait_until_ready()
        async with AsyncLlamaAgentsClient(control_plane.url) as client:
            task_id = await client.create_task("blue mugs", service="inventory")
            failed = await client.wait_for_result(task_id, timeout=60)
            print(f"Task failed: {failed.error}")

            page = await client.list_dead_letters()
            [letter] = page.dead_letters
            print(f"Dead letter: {letter.routing_key}, {letter.attempts} attempts: {letter.reason}")

            inventory.database_up = True  # the operator fixed the cause
            report = await client.replay_dead_letters([letter.id])
            print(f"Replayed {len(report.replayed)}; tasks resumed: {len(report.reopened_tasks)}")
            done = await client.wait_for_result(task_id, timeout=60)
            print(f"Task completed: {done.result}")
            print(f"Dead letters left: {await client.count_dead_letters()}")

        async with httpx.AsyncClient(base_url=control_plane.url) as http:
            metrics = (await http.get("/metrics")).text
        print(f"Failed tasks counted in /metrics: {failed_tasks_counted(metrics):g}")
    finally:
        launcher.shutdown()
        await serving


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as state_dir:
        asyncio.run(main(Path(state_dir)))
