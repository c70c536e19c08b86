"""Finished tasks do not pile up, and nothing reads every task (issue 9, item 9): finished
tasks past `retention_days` are deleted with their events while unfinished ones stay,
whatever their age; `GET /tasks` pages (limit, cursor in `x-next-cursor`, status filter);
`GET /` counts tasks with count queries, never reading the records themselves.

Tasks are written straight into the store, as a long-running system would have left them.
The SQL deletion itself is also tested at the store's level
(`test_state_store.py::test_retention_deletes_finished_tasks_with_their_events`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from llama_agents import ControlPlaneServer, SimpleMessageQueue, TaskRecord, TaskStatus
from llama_agents.control_plane.state import NewEvent
from llama_agents.messages.envelope import utc_now
from tests.support.hardening import (
    RouteByInput,
    insert_finished_tasks,
    insert_task,
    record_reads,
    served,
    state_store,
    trace_statements,
    watching,
)


def aged(task_id: str, status: TaskStatus, days: float) -> TaskRecord:
    """A task created `days` ago; a finished one finished (and was delivered) then too."""
    at = utc_now() - timedelta(days=days)
    finished = at if status.finished else None
    return TaskRecord(
        task_id=task_id,
        input=task_id,
        status=status,
        created_at=at,
        updated_at=at,
        result_published=status.finished,
        finished_at=finished,
    )


async def test_finished_tasks_past_retention_go_with_their_events_unfinished_ones_stay(
    tmp_path: Path,
) -> None:
    store = state_store(tmp_path / "cp.sqlite3")
    tasks = [
        aged("expired", TaskStatus.COMPLETED, days=40),
        aged("expired-failure", TaskStatus.FAILED, days=8),
        aged("recent", TaskStatus.COMPLETED, days=2),
        aged("never-answered", TaskStatus.WAITING_FOR_INPUT, days=60),
    ]
    for task in tasks:
        await insert_task(store, task)
        await store.append_events(task.task_id, [NewEvent({"type": "Progress"})])

    async with (
        watching("llama_agents.control_plane", "past their retention") as purged,
        served(SimpleMessageQueue(), store, retention_days=7) as system,
    ):
        await purged.wait()
        for gone in ("expired", "expired-failure"):
            assert (await system.http.get(f"/tasks/{gone}")).status_code == 404
            assert await store.load_task(gone) is None
            assert await store.read_events(gone) == []
        for kept in ("recent", "never-answered"):
            assert (await system.http.get(f"/tasks/{kept}")).status_code == 200
            assert len(await store.read_events(kept)) == 1
    await store.close()


def test_retention_days_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_AGENTS_RETENTION_DAYS", "7")
    assert ControlPlaneServer(SimpleMessageQueue(), RouteByInput()).retention == timedelta(days=7)
    monkeypatch.setenv("LLAMA_AGENTS_RETENTION_DAYS", "0")
    assert ControlPlaneServer(SimpleMessageQueue(), RouteByInput()).retention is None


async def test_get_tasks_pages_with_a_cursor_and_filters_by_status(tmp_path: Path) -> None:
    store = state_store(tmp_path / "cp.sqlite3")
    statuses = [TaskStatus.FAILED if n % 3 == 0 else TaskStatus.COMPLETED for n in range(25)]
    for n, status in enumerate(statuses):
        await insert_task(store, aged(f"t{n:02d}", status, days=1 - n / 1000))
    newest_first = [f"t{n:02d}" for n in reversed(range(25))]

    async with served(SimpleMessageQueue(), store) as system:

        async def pages(**params: Any) -> list[list[str]]:
            got: list[list[str]] = []
            cursor: str | None = None
            while True:
                query = {**params, **({"cursor": cursor} if cursor else {})}
                response = await system.http.get("/tasks", params=query)
                assert response.status_code == 200, response.text
                got.append([t["task_id"] for t in response.json()])
                cursor = response.headers.get("x-next-cursor")
                if cursor is None:
                    return got
                assert len(got) < 30, "the cursor does not move on"

        everything = await pages(limit=10)
        assert [len(page) for page in everything] == [10, 10, 5]
        assert [t for page in everything for t in page] == newest_first

        failed = await pages(limit=4, status="failed")
        assert [len(page) for page in failed] == [4, 4, 1]
        assert [t for page in failed for t in page] == [
            t for t in newest_first if int(t[1:]) % 3 == 0
        ]
        both = await pages(limit=100, status=["failed", "completed"])
        assert both == [newest_first]
        assert (await system.http.get("/tasks", params={"limit": 0})).status_code == 422
    await store.close()


async def test_a_cursor_the_control_plane_did_not_make_is_a_client_error(tmp_path: Path) -> None:
    async with served(SimpleMessageQueue(), tmp_path / "cp.sqlite3") as system:
        response = await system.http.get("/tasks", params={"cursor": "nonsense"})
    assert response.status_code in (400, 422), response.text


async def test_the_status_page_counts_10000_tasks_without_reading_them(tmp_path: Path) -> None:
    store = state_store(tmp_path / "cp.sqlite3")
    await insert_finished_tasks(store, 10_000)
    async with served(SimpleMessageQueue(), store) as system:
        statements = await trace_statements(store)
        status = await system.http.get("/")
        assert status.status_code == 200, status.text
        counts = status.json()["tasks"]
    assert counts["completed"] == 10_000
    assert sum(counts.values()) == 10_000
    assert statements, "the status page asked the store"
    assert record_reads(statements) == [], "no task record was read to count them"
    assert any("COUNT(" in s.upper() for s in statements), statements
    await store.close()
