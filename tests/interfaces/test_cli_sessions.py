"""`llama-agents sessions ...` with `tasks create --session`: a conversation of two turns
against a real control plane serving a real `WorkflowService`, and the refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llama_agents import SessionInfo, SimpleMessageQueue, WorkflowService
from tests.support.cli import cli, ok, one_error_line
from tests.support.sdk_workflows import Remember
from tests.support.workflows import Mesh, mesh


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Mesh]:
    queue = SimpleMessageQueue()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Remember(), queue, service_name="remember"))
        yield m
    await queue.cleanup()


async def test_a_session_of_two_turns(served: Mesh) -> None:
    url = served.url
    assert ok(await cli(url, "sessions", "create", "--id", "chat")) == "chat\n"
    turn = ("tasks", "create", "--service", "remember", "--session", "chat", "--wait")
    assert json.loads(ok(await cli(url, *turn[:2], "hello", *turn[2:]))) == ["hello"]
    assert json.loads(ok(await cli(url, *turn[:2], "again", *turn[2:]))) == ["hello", "again"]

    info = SessionInfo.model_validate_json(ok(await cli(url, "sessions", "get", "chat", "--json")))
    assert info.session_id == "chat" and len(info.tasks) == 2
    shown = ok(await cli(url, "sessions", "get", "chat")).splitlines()
    assert shown[0] == "Session: chat"
    assert f"Tasks:   {info.tasks[0]}, {info.tasks[1]}" in shown

    listed = ok(await cli(url, "tasks", "list", "--session", "chat")).splitlines()
    assert [row.split()[0] for row in listed[1:]] == list(reversed(info.tasks))
    other = ok(await cli(url, "sessions", "create", "--json"))
    fresh = SessionInfo.model_validate_json(other)
    assert fresh.tasks == [] and fresh.session_id != "chat"
    empty = ok(await cli(url, "tasks", "list", "--session", fresh.session_id))
    assert empty == "No tasks.\n"

    assert ok(await cli(url, "sessions", "delete", "chat")) == "Session chat deleted.\n"
    for command in (["get", "chat"], ["delete", "chat"]):
        gone = await cli(url, "sessions", *command)
        assert one_error_line(gone) == "Error: no session with id 'chat'"
    after = await cli(url, *turn[:2], "once more", *turn[2:])
    assert one_error_line(after) == "Error: no session with id 'chat'"


async def test_session_refusals_are_one_line(served: Mesh) -> None:
    url = served.url
    ok(await cli(url, "sessions", "create", "--id", "taken"))
    taken = await cli(url, "sessions", "create", "--id", "taken")
    assert one_error_line(taken) == "Error: a session with id 'taken' already exists"
    slash = await cli(url, "sessions", "create", "--id", "a/b")
    assert one_error_line(slash) == "Error: session_id 'a/b' cannot contain '/'"
    spaced = await cli(url, "sessions", "get", " ")
    assert one_error_line(spaced) == "Error: session_id must be a non-empty string, not ' '"
