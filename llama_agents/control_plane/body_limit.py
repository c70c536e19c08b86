"""Refusing request bodies above a size limit (413), before they are read into memory.

A declared `Content-Length` above the limit is refused at once; a body sent in chunks is
counted as it arrives and refused when it crosses the limit.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llama_agents._settings import env_int

#: The default largest request body: 1 MiB (`LLAMA_AGENTS_MAX_REQUEST_BYTES`).
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024


def default_max_request_bytes() -> int:
    return env_int("MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES)


class BodyLimitMiddleware:
    """Pure ASGI middleware: 413 for bodies larger than `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # An HTTPException: FastAPI turns anything else raised while it reads
                    # the body into a 400.
                    raise HTTPException(413, _too_large(self.limit))
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": _too_large(self.limit)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> str:
    return f"request body larger than {limit:,} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def limit_request_bodies(app: FastAPI, limit: int) -> None:
    """Refuse bodies above `limit` bytes on every route of `app`."""
    app.add_middleware(BodyLimitMiddleware, limit=limit)


__all__: list[Any] = ["DEFAULT_MAX_REQUEST_BYTES", "BodyLimitMiddleware", "limit_request_bodies"]
