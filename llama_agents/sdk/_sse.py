"""Reading the control plane's streams one line at a time (sync or async alike): server-sent
events (the change stream, a task's event log) and JSON lines (a task's event log)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from llama_agents.errors import ControlPlaneError
from llama_agents.messages.records import ControlPlaneEvent, TaskEvent

#: The SSE event names this client understands; a newer server's other kinds are skipped.
KNOWN_EVENTS = frozenset({"task", "service"})

EVENT_STREAM_HEADERS = {"accept": "text/event-stream", "cache-control": "no-cache"}
NDJSON_HEADERS = {"accept": "application/x-ndjson", "cache-control": "no-cache"}


@dataclass(frozen=True)
class Frame:
    """One complete server-sent event."""

    name: str
    data: str
    id: str | None


class FrameParser:
    """Accumulates `event:`/`data:`/`id:` lines; a blank line completes one event.

    Comment lines (`: keep-alive`) only prove the stream is alive.
    """

    def __init__(self) -> None:
        self._name = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Frame | None:
        """The event this line completes, if any."""
        if not line:
            name, data, id_ = self._name, "\n".join(self._data), self._id
            self._name, self._data, self._id = "message", [], None
            return Frame(name, data, id_) if data else None
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        return None


class EventParser:
    """The change stream (`GET /events`): `ControlPlaneEvent`s."""

    def __init__(self) -> None:
        self._frames = FrameParser()

    def feed(self, line: str) -> ControlPlaneEvent | None:
        frame = self._frames.feed(line)
        if frame is None or frame.name not in KNOWN_EVENTS:
            return None
        try:
            return ControlPlaneEvent.model_validate_json(frame.data)
        except ValidationError as exc:
            raise ControlPlaneError(
                f"unreadable {frame.name!r} event from the control plane: {exc}"
            ) from exc


class TaskEventParser:
    """A task's event log as server-sent events (`GET /tasks/{id}/events`): `TaskEvent`s."""

    def __init__(self) -> None:
        self._frames = FrameParser()

    def feed(self, line: str) -> TaskEvent | None:
        frame = self._frames.feed(line)
        if frame is None or frame.name != "message":
            return None
        event = parse_task_event(frame.data)
        if frame.id is not None and frame.id != str(event.sequence):
            raise ControlPlaneError(
                f"task event {event.sequence} arrived with SSE id {frame.id!r}: a broken stream"
            )
        return event


def parse_task_event(text: str) -> TaskEvent:
    """One `TaskEvent` from its JSON (an SSE `data:` or a JSON line)."""
    try:
        return TaskEvent.model_validate_json(text)
    except ValidationError as exc:
        raise ControlPlaneError(f"unreadable task event from the control plane: {exc}") from exc
