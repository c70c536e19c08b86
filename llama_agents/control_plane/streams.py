"""Streams the HTTP face serves: one task's event log, and every change (for monitors).

Both are driven by what happens (an append, a save), never by polling, send keep-alives
while idle, and end when the control plane stops. A task's stream also ends after its
terminal event, and resumes exactly after the last sequence a client saw.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from llama_agents.control_plane.event_log import TASK_FINISHED
from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.messages.records import KEEPALIVE_SECONDS, TaskEvent, TaskStatus


class LastChunk(str):
    """A stream's last chunk (its terminal event): it ends the response in the same write."""


class EventStreamResponse(StreamingResponse):
    """A streamed response whose `LastChunk` goes out with the response's end, and that
    stops when the client goes away.

    Starlette ends a stream with an empty body message of its own, which the server writes
    apart (with chunked encoding, its terminator): a write, a system call, per stream; a
    workflow run's stream has about four. To hear a client leave, Starlette runs the stream
    in an anyio task group (uvicorn speaks ASGI 2.3, whose `send` does not fail then); two
    plain tasks do the same for half the CPU (about 60 us per stream)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        stream = asyncio.ensure_future(self.stream_response(send))
        watcher = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait((stream, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not stream.done():
                stream.cancel()  # the client went away, or the server is stopping
            await asyncio.gather(stream, watcher, return_exceptions=True)
        if not stream.cancelled():
            stream.result()  # the stream's failure is the response's
        if self.background is not None:
            await self.background()

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        ended = False
        async for chunk in self.body_iterator:
            if ended:
                continue  # nothing follows a terminal event (see `task_events`)
            body = chunk if isinstance(chunk, bytes | memoryview) else chunk.encode(self.charset)
            ended = isinstance(chunk, LastChunk)
            await send({"type": "http.response.body", "body": body, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def log_complete(control_plane: ControlPlaneFace, task_id: str) -> bool:
    """True once nothing more will be appended to the task's log: the stored record says
    finished, and its terminal event is logged (`finished_event`; for a log from before it
    existed, `finished_at`), or the task is gone."""
    body = await control_plane.manager.tasks.stored(task_id)
    if body is None:
        return True
    logged = body.get("finished_event") is not None or body.get("finished_at") is not None
    return TaskStatus(body["status"]).finished and logged


def task_event(sequence: int, body: dict[str, object]) -> TaskEvent:
    return TaskEvent.model_validate({**body, "sequence": sequence})


async def task_events(
    control_plane: ControlPlaneFace,
    task_id: str,
    after: int,
    *,
    sse: bool,
    follow: bool = True,
    heartbeat: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[str]:
    """The task's events after `after`, as server-sent events or JSON lines; without
    `follow`, those up to the last one logged when it was called."""
    manager = control_plane.manager
    if not follow:
        async for text in _logged_events(control_plane, task_id, after, sse=sse):
            yield text
        return

    async def finished() -> bool:
        return await log_complete(control_plane, task_id)

    # No opening comment: the response's headers, written at once, tell the client the
    # stream is open; one write (and one read) fewer per stream.
    async for rows in manager.log.follow_batches(
        task_id,
        after,
        is_finished=finished,
        heartbeat=heartbeat,
        stopping=control_plane.stopping,
    ):
        if rows is None:
            yield ": keep-alive\n\n" if sse else "\n"
            continue
        # The events available at once go out in one write; the terminal event's batch, the
        # stream's last, with the response's end (`follow_batches` ends after it).
        text = "".join(_framed(row.sequence, row.body, sse=sse) for row in rows)
        yield LastChunk(text) if rows[-1].body.get("type") == TASK_FINISHED else text


async def _logged_events(
    control_plane: ControlPlaneFace, task_id: str, after: int, *, sse: bool
) -> AsyncIterator[str]:
    """The task's events after `after`, up to the last one logged now; then the end."""
    store = control_plane.manager.log.store
    last = await store.last_sequence(task_id)
    if sse:
        yield ": connected\n\n"
    while after < last:
        rows = [
            r
            for r in await store.read_events(task_id, after=after, limit=500)
            if r.sequence <= last
        ]
        if not rows:
            return
        for row in rows:
            after = row.sequence
            if row.body.get("type") == TASK_FINISHED and row.sequence < last:
                continue  # an end a reopening undid (see EventLog.follow_batches)
            yield _framed(row.sequence, row.body, sse=sse)


def _framed(sequence: int, body: dict[str, object], *, sse: bool) -> str:
    """One event as a server-sent event, or as a JSON line."""
    payload = task_event(sequence, body).model_dump_json()
    return f"id: {sequence}\ndata: {payload}\n\n" if sse else payload + "\n"


async def change_events(control_plane: ControlPlaneFace) -> AsyncIterator[str]:
    """Every task and service change as server-sent events, until the control plane stops."""
    async with control_plane.manager.events.subscribe() as events:
        yield ": connected\n\n"
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):  # no task per wait, as wait_for
                    event = await events.get()
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if event is None:
                return  # the control plane is stopping: end the stream so it can
            yield f"event: {event.kind}\ndata: {event.model_dump_json()}\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    """The sequence in a `Last-Event-ID` header (None when absent or not a number)."""
    if not value:
        return None
    try:
        sequence = int(json.loads(value)) if value.strip().startswith('"') else int(value)
    except (ValueError, TypeError):
        return None
    return sequence if sequence >= 0 else None
