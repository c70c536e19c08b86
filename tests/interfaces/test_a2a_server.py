"""The mesh as an A2A agent, driven by the official a2a SDK client, on RabbitMQ, with the
system's API key: the card, message/send to a skill, message/stream with an input-required
round trip, contexts as sessions, tasks/get, tasks/cancel, the v0.3 method names, and 401
without the key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from a2a.client import A2ACardResolver, AgentCardResolutionError
from a2a.helpers import get_artifact_text, get_data_parts, get_message_text
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import AgentService, ServiceDefinition, TaskStatus, WorkflowService
from tests.conftest import QueueFactory
from tests.support.a2a_mesh import BEARER, a2a_client, a2a_mesh, collect, user_message
from tests.support.helpers import DEADLINE
from tests.support.llm_server import (
    RuleBook,
    ScriptedLLMServer,
    answer_with_tool_results,
    call,
    when_tool_offered,
    when_tool_result,
)
from tests.support.workflows import Review, Slow

pytestmark = pytest.mark.rabbitmq

SECRET = "The secret fact is: A baby llama is called a 'Cria'."


def states(responses: list[StreamResponse]) -> list[str]:
    """What a stream said, in order: `task:<state>`, `<state>` for updates, `artifact`."""
    said = []
    for response in responses:
        if response.HasField("task"):
            said.append(f"task:{TaskState.Name(response.task.status.state)}")
        elif response.HasField("status_update"):
            said.append(TaskState.Name(response.status_update.status.state))
        elif response.HasField("artifact_update"):
            said.append("artifact")
    return said


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return SECRET


async def test_the_card_lists_the_services_as_skills_behind_the_key(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    async with a2a_mesh(queue, tmp_path) as m:
        await m.add(
            WorkflowService(
                Review(), queue, service_name="review", description="Drafts a note, asks."
            )
        )
        await m.control_plane.register_service(
            ServiceDefinition(service_name="calculator", description="Adds.", kind="tool")
        )
        async with httpx.AsyncClient(headers=BEARER) as http:
            card = await A2ACardResolver(http, m.url).get_agent_card()
            assert [(s.id, s.name, s.description) for s in card.skills] == [
                ("review", "review", "Drafts a note, asks.")
            ], "tool services take tool calls, not tasks: not skills"
            assert card.capabilities.streaming
            assert not card.capabilities.push_notifications
            assert {(i.url, i.protocol_version) for i in card.supported_interfaces} == {
                (f"{m.url}/a2a", "1.0"),
                (f"{m.url}/a2a", "0.3"),
            }
            scheme = card.security_schemes["bearer"].http_auth_security_scheme
            assert scheme.scheme.lower() == "bearer"
            assert "bearer" in card.security_requirements[0].schemes

            # Refreshed from the registry on every read.
            await m.add(WorkflowService(Slow(), queue, service_name="slow", description="Waits."))
            again = await A2ACardResolver(http, m.url).get_agent_card()
            assert sorted(s.id for s in again.skills) == ["review", "slow"]

        async with httpx.AsyncClient(base_url=m.url) as anonymous:
            with pytest.raises(AgentCardResolutionError) as refused:
                await A2ACardResolver(anonymous, m.url).get_agent_card()
            assert refused.value.status_code == 401
            rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
            unauthorised = await anonymous.post("/a2a", json=rpc)
            assert unauthorised.status_code == 401
            assert unauthorised.headers["www-authenticate"] == "Bearer"
            wrong = await anonymous.post("/a2a", json=rpc, headers={"Authorization": "Bearer no"})
            assert wrong.status_code == 401
            assert (await anonymous.get("/health")).status_code == 200


async def test_message_send_to_a_skill_runs_it_there_and_answers_with_the_result(
    rabbitmq_factory: QueueFactory, tmp_path: Path, scripted_llm: ScriptedLLMServer
) -> None:
    scripted_llm.respond = RuleBook(
        [
            (when_tool_result("get_the_secret_fact"), answer_with_tool_results()),
            (when_tool_offered("get_the_secret_fact"), call("get_the_secret_fact", {})),
        ]
    )
    queue = await rabbitmq_factory()
    async with a2a_mesh(queue, tmp_path) as m:
        agent = FunctionAgent(
            tools=[FunctionTool.from_defaults(fn=get_the_secret_fact)], llm=scripted_llm.llm()
        )
        await m.add(AgentService(agent, queue, "Knows the secret fact.", "secret_fact_agent"))
        await m.add(WorkflowService(Review(), queue, service_name="review"))
        async with a2a_client(m.url, streaming=False) as client:
            [response] = await collect(
                client,
                user_message(
                    "What is the secret fact?",
                    skill="secret_fact_agent",
                    context_id="conversation-1",  # new: a session with that id
                ),
            )
            task = response.task
            assert task.context_id == "conversation-1"
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            assert [get_artifact_text(a) for a in task.artifacts] == [SECRET]
            assert get_message_text(task.history[0]) == "What is the secret fact?"
            readers = (await m.control_plane.status())["event_stream_readers"]
            assert readers == 0, "the answer came once the task's log was left"
            record = await m.control_plane.get_task(task.id)  # our task id is A2A's
            assert record.service == "secret_fact_agent"
            assert record.result is not None and record.result.result == SECRET

            # Its context is a session: the next message in it runs in that session.
            [follow] = await collect(
                client,
                user_message("Draft one", skill="review", context_id=task.context_id),
            )
            assert follow.task.context_id == task.context_id
            session = (await m.http.get(f"/sessions/{task.context_id}")).json()
            assert session["tasks"] == [task.id, follow.task.id]
            assert follow.task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            question = get_message_text(follow.task.status.message)
            assert question == "Approve 'a note about Draft one'?"

            # The answer is the next message in the same task: the run continues.
            [done] = await collect(client, user_message("yes", task_id=follow.task.id))
            assert done.task.status.state == TaskState.TASK_STATE_COMPLETED
            [artifact] = done.task.artifacts
            assert get_data_parts(artifact.parts) == [
                {"draft": "a note about Draft one", "approved": True}
            ]

            with pytest.raises(InvalidParamsError, match="no skill 'nope'"):
                await collect(client, user_message("hi", skill="nope"))
            await m.control_plane.register_service(
                ServiceDefinition(service_name="calc", description="Adds.", kind="tool")
            )
            with pytest.raises(InvalidParamsError, match="no skill 'calc'"):
                await collect(client, user_message("1+1", skill="calc"))
            with pytest.raises(TaskNotFoundError):
                await collect(client, user_message("yes", task_id="no-such-task"))
            with pytest.raises(UnsupportedOperationError, match="is completed"):
                await collect(client, user_message("again", task_id=task.id))


async def test_message_stream_shows_the_run_and_its_question_and_the_answer_finishes_it(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    async with a2a_mesh(queue, tmp_path) as m:
        review = Review()
        await m.add(WorkflowService(review, queue, service_name="review", event_coalesce_s=0))
        async with a2a_client(m.url) as client:
            first = await collect(client, user_message("release notes", skill="review"))
            assert states(first)[0] in ("task:TASK_STATE_SUBMITTED", "task:TASK_STATE_WORKING")
            assert states(first)[1:] == ["TASK_STATE_WORKING", "TASK_STATE_INPUT_REQUIRED"]
            task_id, context_id = first[0].task.id, first[0].task.context_id
            # No contextId given: the agent made one, and it is a session of ours.
            assert (await m.http.get(f"/sessions/{context_id}")).json()["tasks"] == [task_id]
            progress = first[1].status_update.status.message
            assert get_message_text(progress) == "drafting release notes"
            assert get_data_parts(progress.parts) == [
                {"type": "Progress", "data": {"message": "drafting release notes"}}
            ]
            asked = first[2].status_update
            assert asked.task_id == task_id and asked.context_id == context_id
            assert get_message_text(asked.status.message) == "Approve 'a note about release notes'?"

            # Our own API agrees: the task waits for input, with that question.
            waiting = await m.control_plane.wait_for_status(
                task_id, {TaskStatus.WAITING_FOR_INPUT}, timeout=DEADLINE
            )
            assert waiting.run is not None and waiting.run.prompt is not None

            second = await collect(client, user_message("yes", task_id=task_id))
            assert states(second) == ["TASK_STATE_WORKING", "artifact", "TASK_STATE_COMPLETED"]
            artifact = second[1].artifact_update
            assert artifact.last_chunk and artifact.task_id == task_id
            assert get_data_parts(artifact.artifact.parts) == [
                {"draft": "a note about release notes", "approved": True}
            ]
            assert review.calls == {"draft": 1, "ask": 1, "decide": 1}

            got = await client.get_task(GetTaskRequest(id=task_id))
            assert got.status.state == TaskState.TASK_STATE_COMPLETED
            assert got.context_id == context_id
            assert [a.artifact_id for a in got.artifacts] == [artifact.artifact.artifact_id]
            assert get_message_text(got.history[0]) == "release notes"
            limited = await client.get_task(GetTaskRequest(id=task_id, history_length=0))
            assert not limited.history
            with pytest.raises(TaskNotFoundError):
                await client.get_task(GetTaskRequest(id="no-such-task"))


async def test_tasks_cancel_stops_the_run_and_the_task_is_canceled(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    async with a2a_mesh(queue, tmp_path) as m:
        slow = Slow()
        await m.add(WorkflowService(slow, queue, service_name="slow"))
        async with a2a_client(m.url, streaming=False, polling=True) as client:
            [response] = await collect(client, user_message("the report", skill="slow"))
            task_id = response.task.id
            assert response.task.status.state in (
                TaskState.TASK_STATE_SUBMITTED,
                TaskState.TASK_STATE_WORKING,
            ), "return_immediately: answered before the run ended"
            await asyncio.wait_for(slow.started.wait(), DEADLINE)
            running = await client.get_task(GetTaskRequest(id=task_id))
            assert running.status.state == TaskState.TASK_STATE_WORKING

            async with a2a_client(m.url) as streaming:
                # Another client follows the running task (tasks/resubscribe)...
                following = streaming.subscribe(SubscribeToTaskRequest(id=task_id))
                snapshot = await anext(following)
                assert snapshot.task.status.state == TaskState.TASK_STATE_WORKING
                cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
                # ... and sees it end, canceled.
                rest = [r async for r in following]
                assert states(rest) == ["TASK_STATE_CANCELED"]
            assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
            await asyncio.wait_for(slow.cancelled.wait(), DEADLINE)  # the run itself was stopped
            record = await m.control_plane.get_task(task_id)
            assert record.status is TaskStatus.CANCELLED
            got = await client.get_task(GetTaskRequest(id=task_id))
            assert got.status.state == TaskState.TASK_STATE_CANCELED
            with pytest.raises(TaskNotCancelableError):
                await client.cancel_task(CancelTaskRequest(id=task_id))


async def test_the_v0_3_method_names_are_served_too(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    async with a2a_mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Review(), queue, service_name="review"))
        sent = await m.http.post(
            "/a2a",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "message/send",
                "params": {
                    "message": {
                        "kind": "message",
                        "messageId": "m-1",
                        "role": "user",
                        "parts": [{"kind": "text", "text": "minutes"}],
                        "metadata": {"skill_id": "review"},
                    }
                },
            },
        )
        assert sent.status_code == 200, sent.text
        task = sent.json()["result"]
        assert task["kind"] == "task"
        assert task["status"]["state"] == "input-required"
        got = await m.http.post(
            "/a2a",
            json={"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}},
        )
        assert got.json()["result"]["id"] == task["id"]
