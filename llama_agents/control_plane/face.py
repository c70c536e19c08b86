"""What the control plane's HTTP face needs of it: a small Protocol, so the face (`app.py`
and its routes) depends on the core and the core never on the face."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from llama_agents.messages import QueueMessage

if TYPE_CHECKING:
    from llama_agents.control_plane.tasks import TaskManager


class ControlPlaneFace(Protocol):
    """The served control plane, as its routes see it."""

    @property
    def url(self) -> str:
        """Where its HTTP API is served (`http://host:port`)."""

    @property
    def api_key(self) -> str | None:
        """The key every route but `/health` asks for; None: no key."""

    @property
    def metrics_open(self) -> bool:
        """Whether `/metrics` answers without the API key (a scraper on a private network)."""

    @property
    def max_request_bytes(self) -> int:
        """The largest request body accepted (413 above it)."""

    @property
    def workflow_api_prefix(self) -> str | None:
        """Where the workflow-server API is served besides the root (None: only there)."""

    @property
    def is_ready(self) -> bool:
        """Started, and its broker connection is healthy."""

    @property
    def manager(self) -> TaskManager:
        """The task manager (raises if the control plane is not started)."""

    @property
    def stopping(self) -> asyncio.Event:
        """Set when the control plane stops: long requests and streams end."""

    async def status(self) -> dict[str, Any]:
        """What `GET /` answers."""

    async def process_message(self, message: QueueMessage, **kwargs: Any) -> None:
        """Handle a message delivered over HTTP (a remote consumer's delivery)."""
