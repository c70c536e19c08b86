"""A task's event log and what can be sent into its run, as `Call`s (see `_protocol`)."""

from __future__ import annotations

import uuid
from typing import Any

from llama_agents.errors import (
    ConfigurationError,
    ConfigurationTypeError,
    EventRejectedError,
    TaskFinishedError,
    TaskNotFoundError,
    UnknownEventTypeError,
)
from llama_agents.messages.records import EventSent

from ._protocol import Call, NewTask, identifier, json_object, model, segment, task_missing
from ._sse import EVENT_STREAM_HEADERS, NDJSON_HEADERS

#: The event a person's answer is (`respond`).
HUMAN_RESPONSE_EVENT = "HumanResponseEvent"

#: A finished task's stream ends right after its `TaskFinished`: the lines read for that end
#: (at most), so the connection goes back to the pool rather than being closed.
END_LINES = 4
#: Seconds the async streams wait for that end.
END_WAIT_SECONDS = 1.0


def check_after(after: int | None) -> int:
    """The sequence to read after (0: from the start)."""
    if after is None:
        return 0
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ConfigurationError(f"after must be a sequence number >= 0 or None, not {after!r}")
    return after


def task_events(
    task_id: str, after: int, *, ndjson: bool = False, follow: bool = True
) -> Call[None]:
    """A task's event log after `after`, as a stream read line by line (see `_sse`).

    Server-sent events resume with `Last-Event-ID`, as a browser's `EventSource` does.
    """
    path = f"/tasks/{segment(task_id, 'task_id')}/events"
    if ndjson:
        params: dict[str, Any] = {"format": "ndjson", "after": after}
        if not follow:
            params["follow"] = "false"
        return Call(
            "GET",
            path,
            lambda _: None,
            params=params,
            headers=NDJSON_HEADERS,
            errors=task_missing(task_id),
        )
    headers = dict(EVENT_STREAM_HEADERS)
    if after:
        headers["last-event-id"] = str(after)
    return Call("GET", path, lambda _: None, headers=headers, errors=task_missing(task_id))


def create_and_stream(task: NewTask) -> tuple[str, Call[None]]:
    """`POST /tasks/stream`: create the task, and read its events from the same response as
    `task_events` reads them (server-sent events). With the task's id, given a new one
    here unless it has one: known before the request, a dropped stream is reopened by it."""
    body = task.body if "task_id" in task.body else {**task.body, "task_id": str(uuid.uuid4())}
    call = Call(
        "POST",
        "/tasks/stream",
        lambda _: None,
        json=body,
        headers=EVENT_STREAM_HEADERS,
        errors=task.errors,
    )
    return str(body["task_id"]), call


def send_event(
    task_id: str, type: str, data: dict[str, Any] | None = None, step: str | None = None
) -> Call[EventSent]:
    path = f"/tasks/{segment(task_id, 'task_id')}/events"
    if not isinstance(type, str) or not type.strip() or len(type) > 200:
        raise ConfigurationError(f"an event type is its class name, not {type!r}")
    body: dict[str, Any] = {
        "type": type,
        "data": {} if data is None else json_object(data, "event data"),
    }
    if step is not None:
        body["step"] = identifier(step, "step")
    return Call(
        "POST",
        path,
        model(EventSent),
        json=body,
        errors={
            400: UnknownEventTypeError,
            404: lambda _: TaskNotFoundError(task_id),
            409: TaskFinishedError,
            422: EventRejectedError,
        },
    )


def respond(task_id: str, text: str) -> Call[EventSent]:
    """A person's answer to a run waiting for input."""
    if not isinstance(text, str):
        raise ConfigurationTypeError(f"an answer is a string, not {text!r}")
    return send_event(task_id, HUMAN_RESPONSE_EVENT, {"response": text})
