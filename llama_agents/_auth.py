"""The shared API key of a system: every HTTP API but `/health` asks for it when it is set.

One key (`LLAMA_AGENTS_API_KEY`) for the control plane and the services: callers send
`Authorization: Bearer <key>` (or `X-API-Key: <key>`). `/health` stays open for probes.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request

from llama_agents._settings import env_str

#: Routes that answer without the key: probes must work before anyone has one.
OPEN_PATHS = frozenset({"/health"})


def configured_api_key(explicit: str | None = None) -> str | None:
    """The key: the argument, else `LLAMA_AGENTS_API_KEY`, else None (no key required)."""
    return explicit or env_str("API_KEY", "") or None


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The headers that carry `api_key` (none when there is no key)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def api_key_guard(api_key: str | None) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency refusing requests without the key; with no key, a no-op."""

    async def guard(request: Request) -> None:
        if api_key is None or request.url.path in OPEN_PATHS:
            return
        given = request.headers.get("x-api-key")
        authorization = request.headers.get("authorization", "")
        if given is None and authorization.lower().startswith("bearer "):
            given = authorization[7:]
        if given is None or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong API key (send Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard
