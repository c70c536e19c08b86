"""Reading a task's event stream over HTTP, as any client would."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx


async def read_sse(
    http: httpx.AsyncClient,
    task_id: str,
    *,
    until: Callable[[dict[str, Any]], bool] | None = None,
    last_event_id: int | None = None,
    after: int | None = None,
) -> list[dict[str, Any]]:
    """Events (with their `id:` checked against `sequence`) until `until` holds or it ends."""
    headers = {"last-event-id": str(last_event_id)} if last_event_id is not None else {}
    params = {"after": after} if after is not None else {}
    events: list[dict[str, Any]] = []
    async with http.stream(
        "GET", f"/tasks/{task_id}/events", headers=headers, params=params
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        sequence: int | None = None
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                sequence = int(line[4:])
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                assert event["sequence"] == sequence
                events.append(event)
                if until is not None and until(event):
                    break
    return events


async def read_ndjson(
    http: httpx.AsyncClient,
    task_id: str,
    *,
    until: Callable[[dict[str, Any]], bool] | None = None,
    after: int = 0,
) -> list[dict[str, Any]]:
    """Events as JSON lines until `until` holds or the stream ends (blank lines: keep-alives)."""
    events: list[dict[str, Any]] = []
    async with http.stream(
        "GET", f"/tasks/{task_id}/events", params={"format": "ndjson", "after": after}
    ) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            events.append(event)
            if until is not None and until(event):
                break
    return events


def of_type(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: name in event["types"]
