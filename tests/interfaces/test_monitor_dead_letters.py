"""The monitor's status bar counts the dead letters, and counts again when a task fails
(a dead-lettered step fails its task)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llama_agents import (
    ActionTypes,
    AsyncLlamaAgentsClient,
    QueueMessage,
    TaskDefinition,
    TaskResult,
)
from llama_agents.console.monitor_app import MonitorApp
from llama_agents.console.monitor_state import Connection
from tests.support.helpers import DEADLINE
from tests.support.systems import System, served_system


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_AGENTS_API_KEY", raising=False)


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    async with served_system(tmp_path) as served:
        yield served


async def test_status_bar_shows_the_dead_letter_count(system: System) -> None:
    queue = system.control_plane.manager.message_queue
    await queue.publish_raw(b"poison one", "worker")
    await queue.fetch_dead_letters(remove=False, wait_for=1, timeout=DEADLINE)
    async with AsyncLlamaAgentsClient(system.url) as client:
        app = MonitorApp(client)
        async with app.run_test(size=(140, 40)):
            await app.wait_until(lambda: app.state.connection is Connection.CONNECTED, DEADLINE)
            await app.wait_until(lambda: "dead letters: 1" in app.status_text, DEADLINE)

            # Another letter, then a task fails: the monitor counts again.
            await queue.publish_raw(b"poison two", "worker")
            await queue.fetch_dead_letters(remove=False, wait_for=2, timeout=DEADLINE)
            task_id = await client.create_task("question")
            step = TaskDefinition.model_validate((await system.next_step(1)).data)
            failed = TaskResult(
                task_id=task_id, step_id=step.step_id, result="", error="dead-lettered: x"
            )
            await queue.publish(
                QueueMessage(
                    type="control_plane",
                    action=ActionTypes.COMPLETED_TASK,
                    data=failed.model_dump(mode="json"),
                )
            )
            await app.wait_until(lambda: "dead letters: 2" in app.status_text, DEADLINE)
