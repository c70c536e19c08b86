"""The system the RabbitMQ cluster fault test runs, every part its own OS process.

- `build_echo` is served by `llama-agents serve service` (two replicas): a one-step workflow
  that takes a while and writes each run to the ledger file (`LLAMA_AGENTS_TEST_LEDGER`).
- `python -m tests.support.cluster_system <count>` is the load generator: it submits `count`
  tasks addressed to `echo` through the SDK and consumes the final results from the `human`
  queue over the broker, printing one `result <task_id> <message_id>` line per delivery, so
  the test can follow progress from its output and count duplicates.

Every process takes its broker addresses from `LLAMA_AGENTS_AMQP_URL`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent

from llama_agents import (
    AsyncLlamaAgentsClient,
    CallableMessageConsumer,
    QueueMessage,
    RabbitMQMessageQueue,
    TaskResult,
    WorkflowService,
)
from llama_agents.logs import configure_logging

SERVICE = "echo"


class Echo(Workflow):
    """Answers with its input after `LLAMA_AGENTS_TEST_WORK_SECONDS`, noting each run."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @step
    async def work(self, ev: StartEvent) -> StopEvent:
        text = str(ev.get("input", ""))
        await asyncio.sleep(float(os.environ.get("LLAMA_AGENTS_TEST_WORK_SECONDS", "0.2")))
        replica = os.environ.get("LLAMA_AGENTS_TEST_REPLICA", "?")
        await asyncio.to_thread(_record, f"{replica} {text.replace(' ', '_')}\n")
        return StopEvent(result=f"echo {text}")


def _record(line: str) -> None:
    """One short O_APPEND write: lines from several processes never interleave."""
    with open(os.environ["LLAMA_AGENTS_TEST_LEDGER"], "a", encoding="utf-8") as out:
        out.write(line)


def build_echo() -> WorkflowService:
    return WorkflowService(
        Echo(),
        RabbitMQMessageQueue(reconnect_interval=0.2, max_reconnect_interval=1.0),
        service_name=SERVICE,
        description="Echoes its input.",
        max_concurrent_runs=5,
        event_coalesce_s=0,
    )


async def generate(count: int) -> None:
    """Submit `count` tasks to `echo`; print every final result delivered (`done` once each
    task has one), and go on printing any further delivery until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    queue = RabbitMQMessageQueue(
        reconnect_interval=0.2, max_reconnect_interval=1.0, connection_name="load-generator"
    )
    answered: set[str] = set()
    changed = asyncio.Condition()

    async def receive(message: QueueMessage) -> None:
        result = TaskResult.model_validate(message.data)
        print(f"result {result.task_id} {message.id_}", flush=True)
        async with changed:
            answered.add(result.task_id)
            changed.notify_all()

    start = await queue.register_consumer(
        CallableMessageConsumer(handler=receive, message_type="human")
    )
    consuming = asyncio.create_task(start())
    print(f"load generator ready on {queue.connected_url}", flush=True)
    async with AsyncLlamaAgentsClient(os.environ["LLAMA_AGENTS_CONTROL_PLANE_URL"]) as client:
        task_ids = await asyncio.gather(
            *(client.create_task(f"task {n}", service=SERVICE) for n in range(count))
        )
    for task_id in task_ids:
        print(f"submitted {task_id}", flush=True)
    async with changed:
        await changed.wait_for(lambda: answered >= set(task_ids))
    print(f"load generator done on {queue.connected_url}", flush=True)
    await stop.wait()
    await queue.close()
    consuming.cancel()


if __name__ == "__main__":
    configure_logging()
    logging.getLogger("llama_agents").setLevel(logging.INFO)  # the nodes it connects to
    asyncio.run(generate(int(sys.argv[1])))
