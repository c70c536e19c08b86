"""Reading the control plane's server-sent events, one line at a time (sync or async alike)."""

from __future__ import annotations

from pydantic import ValidationError

from llama_agents.errors import ControlPlaneError
from llama_agents.messages.records import ControlPlaneEvent

#: The SSE event names this client understands; a newer server's other kinds are skipped.
KNOWN_EVENTS = frozenset({"task", "service"})

EVENT_STREAM_HEADERS = {"accept": "text/event-stream", "cache-control": "no-cache"}


class EventParser:
    """Accumulates `event:`/`data:` lines; a blank line completes one event.

    Comment lines (`: keep-alive`) only prove the stream is alive.
    """

    def __init__(self) -> None:
        self._name = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> ControlPlaneEvent | None:
        """The event this line completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> ControlPlaneEvent | None:
        name, data = self._name, "\n".join(self._data)
        self._name, self._data = "message", []
        if not data or name not in KNOWN_EVENTS:
            return None
        try:
            return ControlPlaneEvent.model_validate_json(data)
        except ValidationError as exc:
            raise ControlPlaneError(
                f"unreadable {name!r} event from the control plane: {exc}"
            ) from exc
