"""The monitor's side of human services: the requests waiting for a person, and answers.

A served `HumanService` lists its waiting requests at `GET /tasks` and takes an answer at
`POST /tasks/{id_}/handle`; the monitor reaches it at the host and port it registered with.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from llama_agents._auth import auth_headers
from llama_agents.errors import HumanServiceError as HumanServiceError  # its old import path
from llama_agents.messages import ServiceDefinition


class WaitingRequest(BaseModel):
    """A request waiting for a person, as a human service lists it, and where it waits."""

    service: str = ""  # the service's name at the control plane (set by the monitor)
    url: str = ""  # where that service is served (set by the monitor)
    id_: str
    task_id: str
    step_id: str | None = None
    input: str
    prompt: str
    created_at: datetime

    @property
    def key(self) -> str:
        """Unique across services: the request list's row key."""
        return f"{self.service}/{self.id_}"


_LISTING = TypeAdapter(list[WaitingRequest])


def human_url(definition: ServiceDefinition | None) -> str | None:
    """Where a served human service answers HTTP; None for any other service."""
    if definition is None or definition.kind != "human":
        return None
    if not definition.host or not definition.port:
        return None
    host = f"[{definition.host}]" if ":" in definition.host else definition.host
    return f"http://{host}:{definition.port}"


def age(since: datetime, now: datetime | None = None) -> str:
    """How long ago, coarsely: `12s`, `3m`, `2h`, `4d`."""
    seconds = max(0, int(((now or datetime.now(UTC)) - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class HumanDesk:
    """Lists and answers the requests of human services over one shared HTTP client."""

    def __init__(self, timeout: float = 10.0, api_key: str | None = None) -> None:
        # Human services ask for the system's API key, as the control plane does.
        self.http = httpx.AsyncClient(timeout=timeout, headers=auth_headers(api_key))

    async def waiting(self, service: str, url: str) -> list[WaitingRequest]:
        """The requests waiting at `service` (served at `url`), oldest first."""
        try:
            response = await self.http.get(f"{url}/tasks")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise HumanServiceError(f"cannot reach {service} at {url}: {exc}") from exc
        if not response.is_success:
            raise HumanServiceError(f"{service} answered {response.status_code} to GET /tasks")
        try:
            listed = _LISTING.validate_json(response.content)
        except ValidationError as exc:
            raise HumanServiceError(f"{service} listed requests the monitor cannot read") from exc
        for request in listed:
            request.service, request.url = service, url
        return sorted(listed, key=lambda r: r.created_at)

    async def answer(self, request: WaitingRequest, answer: str) -> bool:
        """Send `answer`; False when the request no longer waits (answered by someone else)."""
        try:
            response = await self.http.post(
                f"{request.url}/tasks/{quote(request.id_, safe='')}/handle", json={"result": answer}
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise HumanServiceError(f"cannot reach {request.service}: {exc}") from exc
        if response.status_code == 404:
            return False
        if not response.is_success:
            raise HumanServiceError(
                f"{request.service} refused the answer: {response.status_code} "
                f"{response.text[:200]}"
            )
        return True

    async def aclose(self) -> None:
        await self.http.aclose()
