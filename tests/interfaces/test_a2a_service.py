"""A remote A2A agent (written with the official SDK's server classes, served by uvicorn in the
test) as a service of the mesh, on RabbitMQ: an orchestrator's LLM (the scripted server) picks
it, its streamed updates are our task's events, its `input-required` our `waiting_for_input`,
the answer sent through `POST /tasks/{id}/events` goes back to it in the same remote task, and
its failure is a failed step."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llama_agents import A2AService, AgentOrchestrator, ConfigurationError, TaskStatus
from tests.conftest import QueueFactory
from tests.support.a2a_agents import DESCRIPTION, QUESTION, REMOTE_KEY, remote_agent
from tests.support.a2a_mesh import a2a_mesh
from tests.support.helpers import DEADLINE
from tests.support.llm_server import (
    RuleBook,
    ScriptedLLMServer,
    answer_with_tool_results,
    call,
    when_tool_result,
    when_user_says,
)
from tests.support.streams import of_type, read_sse

pytestmark = pytest.mark.rabbitmq


def updates(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The remote's status updates among our task's events: (state, its words)."""
    return [
        (e["data"]["state"], e["data"]["text"]) for e in events if e["type"] == "A2AStatusUpdate"
    ]


def chunks(events: list[dict[str, Any]]) -> list[str]:
    """The remote's artifact chunks among our task's events."""
    return [e["data"]["text"] for e in events if e["type"] == "A2AArtifactUpdate"]


@pytest.mark.parametrize("streaming", [True, False], ids=["message-stream", "message-send"])
async def test_an_orchestrated_task_talks_to_the_remote_agent_and_a_person_answers_it(
    rabbitmq_factory: QueueFactory,
    tmp_path: Path,
    scripted_llm: ScriptedLLMServer,
    streaming: bool,
) -> None:
    scripted_llm.respond = RuleBook(
        [
            (when_tool_result("forecaster"), answer_with_tool_results("Forecast: {results}")),
            (when_user_says("weather"), call("forecaster", {"input": "weather for my trip"})),
        ]
    )
    queue = await rabbitmq_factory()
    orchestrator = AgentOrchestrator(llm=scripted_llm.llm())
    async with (
        remote_agent(streaming=streaming) as remote,
        a2a_mesh(queue, tmp_path, orchestrator) as m,
    ):
        service = A2AService(
            agent_card_url=remote.url,
            message_queue=queue,
            service_name="forecaster",
            api_key=REMOTE_KEY,
        )
        await m.add(service)
        assert (await m.control_plane.get_service("forecaster")).description == DESCRIPTION
        assert service.status()["a2a"]["streaming"] is streaming

        created = await m.http.post("/tasks", json={"input": "What will the weather be?"})
        task_id = created.json()["task_id"]
        waiting = await m.control_plane.wait_for_status(
            task_id, {TaskStatus.WAITING_FOR_INPUT}, timeout=DEADLINE
        )
        assert waiting.summary().prompt is not None
        assert waiting.summary().prompt["data"]["prefix"] == QUESTION
        asked = await read_sse(m.http, task_id, until=of_type("InputRequiredEvent"))
        if streaming:  # a blocking message/send shows only where it ended
            assert updates(asked) == [
                ("submitted", ""),
                ("working", "reading: weather for my trip"),
            ]
        assert asked[-1]["data"]["prefix"] == QUESTION

        sent = await m.http.post(
            f"/tasks/{task_id}/events",
            json={"type": "HumanResponseEvent", "data": {"response": "Lisbon"}},
        )
        assert sent.status_code == 202, sent.text
        done = await m.control_plane.wait_for_task(task_id, timeout=DEADLINE)
        assert done.status is TaskStatus.COMPLETED, done.error
        assert done.result is not None
        assert done.result.result == "Forecast: Sunny in Lisbon, 22 degrees."

        events = await read_sse(m.http, task_id)
        if streaming:
            assert updates(events) == [
                ("submitted", ""),
                ("working", "reading: weather for my trip"),
                ("working", "looking up Lisbon"),
            ]
            assert chunks(events) == ["Sunny in Lisbon, ", "22 degrees."]
        assert events[-1]["type"] == "TaskFinished"
        # Both messages went to one remote task: the answer continued the question's.
        first, second = remote.agent.seen
        assert (first.text, second.text) == ("weather for my trip", "Lisbon")
        assert first.task_id == second.task_id and first.context_id == second.context_id


async def test_a_run_released_while_the_remote_waits_resumes_in_the_same_remote_task(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    async with remote_agent() as remote, a2a_mesh(queue, tmp_path) as m:
        service = A2AService(
            remote.url, queue, service_name="forecaster", api_key=REMOTE_KEY, idle_release_s=0
        )
        await m.add(service)
        created = await m.http.post("/tasks", json={"input": "trip", "service": "forecaster"})
        task_id = created.json()["task_id"]
        released = await m.control_plane.manager.wait_until(
            task_id, lambda r: r.run is not None and r.run.released, DEADLINE
        )
        assert released.status is TaskStatus.WAITING_FOR_INPUT

        sent = await m.http.post(
            f"/tasks/{task_id}/events",
            json={"type": "HumanResponseEvent", "data": {"response": "Oslo"}},
        )
        assert sent.status_code == 202, sent.text
        done = await m.control_plane.wait_for_task(task_id, timeout=DEADLINE)
        assert done.result is not None and done.result.result == "Sunny in Oslo, 22 degrees."
        assert done.steps[0].attempt == 2, "the answer resumed the run: a new attempt"
        first, second = remote.agent.seen
        assert first.task_id == second.task_id, "resumed from its checkpoint, same remote task"


async def test_a_session_is_one_remote_context(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    async with remote_agent() as remote, a2a_mesh(queue, tmp_path) as m:
        await m.add(A2AService(remote.url, queue, service_name="forecaster", api_key=REMOTE_KEY))
        session = (await m.http.post("/sessions", json={})).json()["session_id"]
        for city in ("Oslo", "Rome"):
            created = await m.http.post(
                "/tasks",
                json={"input": "trip", "service": "forecaster", "session_id": session},
            )
            task_id = created.json()["task_id"]
            await m.control_plane.wait_for_status(
                task_id, {TaskStatus.WAITING_FOR_INPUT}, timeout=DEADLINE
            )
            await m.http.post(
                f"/tasks/{task_id}/events",
                json={"type": "HumanResponseEvent", "data": {"response": city}},
            )
            done = await m.control_plane.wait_for_task(task_id, timeout=DEADLINE)
            assert done.result is not None and city in done.result.result
        seen = remote.agent.seen
        assert [s.text for s in seen] == ["trip", "Oslo", "trip", "Rome"]
        assert len({s.context_id for s in seen}) == 1, "the session's tasks share a context"
        assert len({s.task_id for s in seen}) == 2, "each task of ours is a remote task"


async def test_an_answer_sent_before_the_remote_asks_is_ignored_and_it_asks_again(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    async with remote_agent() as remote, a2a_mesh(queue, tmp_path) as m:
        await m.add(A2AService(remote.url, queue, service_name="forecaster", api_key=REMOTE_KEY))
        created = await m.http.post("/tasks", json={"input": "slowly", "service": "forecaster"})
        task_id = created.json()["task_id"]
        await asyncio.wait_for(remote.agent.working.wait(), DEADLINE)
        early = await m.http.post(
            f"/tasks/{task_id}/events",
            json={"type": "HumanResponseEvent", "data": {"response": "Paris"}},
        )
        assert early.status_code == 202, early.text
        # The run took it (its checkpoint says so) while the remote still works ...
        await m.control_plane.manager.wait_until(
            task_id, lambda r: r.run is not None and not r.run.inputs, DEADLINE
        )
        remote.agent.gate.set()  # ... then the remote asks: the run asks us, as ever
        waiting = await m.control_plane.wait_for_status(
            task_id, {TaskStatus.WAITING_FOR_INPUT}, timeout=DEADLINE
        )
        assert waiting.summary().prompt is not None
        await m.http.post(
            f"/tasks/{task_id}/events",
            json={"type": "HumanResponseEvent", "data": {"response": "Rome"}},
        )
        done = await m.control_plane.wait_for_task(task_id, timeout=DEADLINE)
        assert done.result is not None and done.result.result == "Sunny in Rome, 22 degrees."
        assert [s.text for s in remote.agent.seen] == ["slowly", "Rome"]


async def test_a_remote_failure_is_a_failed_step_with_its_words(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    async with remote_agent() as remote, a2a_mesh(queue, tmp_path) as m:
        await m.add(A2AService(remote.url, queue, service_name="forecaster", api_key=REMOTE_KEY))
        created = await m.http.post(
            "/tasks", json={"input": "please fail", "service": "forecaster"}
        )
        done = await m.control_plane.wait_for_task(created.json()["task_id"], timeout=DEADLINE)
        assert done.status is TaskStatus.FAILED
        assert done.error is not None
        assert done.error.startswith("TaskFailedError: the A2A agent at")
        assert "failed: the forecast is down" in done.error


async def test_cancelling_our_task_cancels_the_remote_one(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    async with remote_agent() as remote, a2a_mesh(queue, tmp_path) as m:
        await m.add(A2AService(remote.url, queue, service_name="forecaster", api_key=REMOTE_KEY))
        created = await m.http.post("/tasks", json={"input": "slowly", "service": "forecaster"})
        task_id = created.json()["task_id"]
        await asyncio.wait_for(remote.agent.working.wait(), DEADLINE)
        cancelled = await m.http.post(f"/tasks/{task_id}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        await asyncio.wait_for(remote.agent.cancel_seen.wait(), DEADLINE)
        assert remote.agent.cancelled == [remote.agent.seen[0].task_id]


async def test_the_remote_card_is_read_with_its_key_and_a_refusal_is_clear(
    rabbitmq_factory: QueueFactory,
) -> None:
    queue = await rabbitmq_factory()
    async with remote_agent() as remote:
        service = A2AService(f"{remote.url}/.well-known/agent-card.json", queue, "forecaster")
        with pytest.raises(ConfigurationError, match="refused its card \\(401\\)"):
            await service.load_card()
        keyed = A2AService(
            f"{remote.url}/.well-known/agent-card.json",
            queue,
            "forecaster",
            description="Mine.",
            headers={"Authorization": f"Bearer {REMOTE_KEY}"},
        )
        card = await keyed.load_card()
        assert card.name == "forecaster"
        assert keyed.description == "Mine.", "a given description wins over the card's"
        await keyed.remote.close()
