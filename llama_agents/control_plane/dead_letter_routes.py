"""`/dead-letters`: the operator's dead-letter tools over HTTP (list, show, replay, purge).

The app's API key guards these like every route. Replaying a step's letter reopens the task
it failed (`dead_letter_replay`) before the letter is published again, so its answer is
recorded and the task completes.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field, model_validator

from llama_agents.control_plane.dead_letter_replay import reopen
from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.errors import ConfigurationError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.message_queues.delivery import DeadLetter
from llama_agents.message_queues.replay import ReplayOutcome, selects

#: The most dead letters one `GET /dead-letters` returns.
MAX_LIST = 1000

_ID = r"^[0-9a-f]{4,64}$"


class DeadLetterPage(BaseModel):
    """`GET /dead-letters`: how many wait, and the oldest `limit` of them."""

    count: int | None
    dead_letters: list[DeadLetter]


class ReplayRequest(BaseModel):
    """`POST /dead-letters/replay`: the letters named by `ids`, or `all` of them; either
    narrowed to those whose reason contains `reason`."""

    ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_LIST)
    all: bool = False
    reason: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _one_selection(self) -> ReplayRequest:
        if (self.ids is None) == (not self.all):
            raise ConfigurationError("name the dead letters to replay (ids) or ask for all of them")
        for letter_id in self.ids or ():
            if not _is_id(letter_id):
                raise ConfigurationError(f"{letter_id!r} is not a dead-letter id")
        return self


class ReplayResponse(ReplayOutcome):
    """What was replayed, what could not be, and the tasks reopened for it."""

    reopened_tasks: list[str] = Field(default_factory=list)


class Purged(BaseModel):
    purged: int


class DeadLetterCount(BaseModel):
    count: int | None


def _is_id(value: str) -> bool:
    return 4 <= len(value) <= 64 and all(c in "0123456789abcdef" for c in value)


def _queue(control_plane: ControlPlaneFace) -> BaseMessageQueue:
    return control_plane.manager.message_queue


async def _all(queue: BaseMessageQueue) -> list[DeadLetter]:
    return await queue.fetch_dead_letters(remove=False)


def _find(letters: list[DeadLetter], letter_id: str) -> DeadLetter:
    """The letter with this id, or with this unique id prefix (404, or 409 if ambiguous)."""
    found = [d for d in letters if d.id.startswith(letter_id)]
    if not found:
        raise HTTPException(404, f"no dead letter with id {letter_id!r}")
    if len({d.id for d in found}) > 1:
        raise HTTPException(409, f"{letter_id!r} names {len(found)} dead letters: give more of it")
    return found[0]


def dead_letter_router(control_plane: ControlPlaneFace) -> APIRouter:
    """The `/dead-letters` routes of the control plane's app."""
    router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

    @router.get("")
    async def list_dead_letters(
        limit: int = Query(default=100, ge=1, le=MAX_LIST),
    ) -> DeadLetterPage:
        """The oldest `limit` dead letters (read and handed back: none is removed)."""
        queue = _queue(control_plane)
        letters = await queue.fetch_dead_letters(limit, remove=False)
        # Fewer than asked for: that is all of them, counted exactly. (The broker's own
        # count of a quorum queue can lag a moment behind letters a reader just handed back.)
        exact = len(letters) < limit
        count = len(letters) if exact else await queue.dead_letter_count()
        return DeadLetterPage(count=count, dead_letters=letters)

    @router.get("/count")
    async def count_dead_letters() -> DeadLetterCount:
        return DeadLetterCount(count=await _queue(control_plane).dead_letter_count())

    @router.get("/{letter_id}")
    async def show_dead_letter(letter_id: str) -> DeadLetter:
        if not _is_id(letter_id):
            raise HTTPException(422, f"{letter_id!r} is not a dead-letter id")
        return _find(await _all(_queue(control_plane)), letter_id)

    @router.post("/replay")
    async def replay_dead_letters(request: ReplayRequest) -> ReplayResponse:
        """Reopen the tasks the selected letters failed, then publish the letters back."""
        queue = _queue(control_plane)
        letters = await _all(queue)
        if request.ids is not None:
            chosen = {_find(letters, letter_id).id for letter_id in request.ids}
        else:
            chosen = {d.id for d in letters}
        selected = [d for d in letters if selects(d, chosen, request.reason)]
        reopened = await reopen(control_plane.manager, selected)
        try:
            outcome = await queue.replay_dead_letters(chosen, reason=request.reason)
        except ConfigurationError as exc:
            raise HTTPException(501, str(exc)) from exc
        return ReplayResponse(**outcome.model_dump(), reopened_tasks=reopened)

    @router.post("/purge")
    async def purge_dead_letters() -> Purged:
        try:
            return Purged(purged=await _queue(control_plane).purge_dead_letters())
        except ConfigurationError as exc:
            raise HTTPException(501, str(exc)) from exc

    return router
