"""The shared API key of a system: every HTTP API but `/health` asks for it when it is set.

One key (`LLAMA_AGENTS_API_KEY`) for the control plane and the services: callers send
`Authorization: Bearer <key>` (or `X-API-Key: <key>`). `/health` stays open for probes.

`require_api_key(app, key)` guards a whole app: the routes FastAPI adds by itself (`/docs`,
`/redoc`, `/openapi.json`, which describe the whole API) and unknown paths too, which a
dependency on the app's routes (`api_key_guard`) does not reach.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from llama_agents._settings import env_str

#: Routes that answer without the key: probes must work before anyone has one.
OPEN_PATHS = frozenset({"/health"})

_REFUSED = "missing or wrong API key (send Authorization: Bearer <key>)"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def configured_api_key(explicit: str | None = None) -> str | None:
    """The key: the argument, else `LLAMA_AGENTS_API_KEY`, else None (no key required)."""
    return explicit or env_str("API_KEY", "") or None


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The headers that carry `api_key` (none when there is no key)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def carries_key(headers: Mapping[str, str], api_key: str) -> bool:
    """Whether a request's headers (lower-case names) carry `api_key`."""
    given = headers.get("x-api-key")
    authorization = headers.get("authorization", "")
    if given is None and authorization.lower().startswith("bearer "):
        given = authorization[7:]
    return given is not None and hmac.compare_digest(given.encode(), api_key.encode())


def api_key_guard(api_key: str | None) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency refusing requests without the key; with no key, a no-op.

    It covers the routes it is attached to only; `require_api_key` covers a whole app.
    """

    async def guard(request: Request) -> None:
        if api_key is None or request.url.path in OPEN_PATHS:
            return
        if not carries_key(request.headers, api_key):
            raise HTTPException(status_code=401, detail=_REFUSED, headers=_CHALLENGE)

    return guard


class ApiKeyMiddleware:
    """ASGI middleware refusing any request without the key, but to `open_paths`.

    HTTP gets a 401; a websocket is closed before it is accepted (the server answers 403).
    """

    def __init__(self, app: ASGIApp, api_key: str, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.api_key = api_key
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or scope["path"] in self.open_paths
            or carries_key(Headers(scope=scope), self.api_key)
        ):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "API key"})
        else:
            refused = JSONResponse({"detail": _REFUSED}, status_code=401, headers=_CHALLENGE)
            await refused(scope, receive, send)


def require_api_key(
    app: FastAPI, api_key: str | None, *, also_open: frozenset[str] = frozenset()
) -> None:
    """Make every request to `app` but `/health` (and `also_open`) need `api_key`; with
    None, change nothing."""
    if api_key is not None:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key, open_paths=OPEN_PATHS | also_open)
