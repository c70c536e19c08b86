"""The monitor's side of human services: the requests waiting for a person, and answers.

A served `HumanService` lists its waiting requests at `GET /tasks` and takes an answer at
`POST /tasks/{id_}/handle`; the monitor reaches it at the host and port it registered with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
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


class WaitingWatch:
    """Fetches the requests waiting at human services whenever asked to, never on a clock.

    Debounced: what is asked while a fetch is due joins it, so a burst of asks costs one fetch
    per service. `settle` asks once more a moment later: a human service takes its step from
    the queue a moment after the control plane says it was sent.

    Args:
        desk: what fetches a service's list.
        locate: where a service answers now (`human_url` of its definition), None when it is
            no longer a served human service (it is then skipped).
        listed: called with a service, the URL asked and what it listed.
        failed: called with a service and why its list could not be fetched.
    """

    def __init__(
        self,
        desk: HumanDesk,
        *,
        locate: Callable[[str], str | None],
        listed: Callable[[str, str, list[WaitingRequest]], None],
        failed: Callable[[str, Exception], None],
        debounce: float = 0.1,
        settle: float = 1.0,
    ) -> None:
        self.desk = desk
        self.locate = locate
        self.listed = listed
        self.failed = failed
        self.debounce = debounce
        self.settle = settle
        self._stale: set[str] = set()  # services whose requests to fetch
        self._fetching: asyncio.Task[None] | None = None
        self._settling: set[str] = set()  # services to look at once more, soon
        self._settle_timer: asyncio.TimerHandle | None = None

    def want(self, names: Iterable[str], settle: Iterable[str] = ()) -> None:
        """Fetch these services' requests soon; those in `settle` once more, later."""
        self._stale.update(names)
        if self._stale and (self._fetching is None or self._fetching.done()):
            self._fetching = asyncio.create_task(self._fetch(), name="monitor-human-requests")
        self._settling.update(settle)
        if self._settling and self._settle_timer is None:
            self._settle_timer = asyncio.get_running_loop().call_later(self.settle, self._settled)

    def _settled(self) -> None:
        names, self._settling, self._settle_timer = self._settling, set(), None
        self.want(names)

    async def _fetch(self) -> None:
        while self._stale:
            await asyncio.sleep(self.debounce)
            names, self._stale = self._stale, set()
            await asyncio.gather(*(self._fetch_one(name) for name in sorted(names)))

    async def _fetch_one(self, name: str) -> None:
        url = self.locate(name)
        if url is None:
            return
        try:
            listed = await self.desk.waiting(name, url)
        except Exception as exc:  # a broken service is reported, no more
            self.failed(name, exc)
            return
        self.listed(name, url, listed)

    async def aclose(self) -> None:
        """Stop: nothing more is fetched."""
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None
        if self._fetching is not None:
            self._fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetching
