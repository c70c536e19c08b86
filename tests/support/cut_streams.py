"""httpx transports that cut a task's event stream mid-way, as a dropped connection would.

Each `GET /tasks/{id}/events` (and `POST /tasks/stream`) response is passed through until
`cuts[i]` events went by; then half of whatever comes next (the start of the next event,
say) is sent and the read fails with `httpx.ReadError`. Later responses pass whole. The
requests are kept, so a test can check what the client asked for when it came back
(`Last-Event-ID`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx

DATA = b"\ndata:"


def _is_events(request: httpx.Request) -> bool:
    if request.method == "POST":
        return request.url.path == "/tasks/stream"
    return request.method == "GET" and request.url.path.endswith("/events")


class _Cutter:
    """Counts complete events in the bytes going by; says what to send before the cut."""

    def __init__(self, events: int) -> None:
        self.left = events
        self.pending = b""

    def feed(self, chunk: bytes) -> tuple[bytes, bool]:
        """What to send now, and whether the connection is cut after it."""
        self.pending += chunk
        out = b""
        while self.left > 0 and b"\n\n" in self.pending:
            frame, self.pending = self.pending.split(b"\n\n", 1)
            out += frame + b"\n\n"
            if (b"\n" + frame).find(DATA) >= 0:
                self.left -= 1
        if self.left > 0 or not self.pending:
            return out, False
        upcoming = self.pending.split(b"\n\n", 1)[0]  # the next event (or comment) only
        return out + self.pending[: max(1, len(upcoming) // 2)], True


def _cut_error(request: httpx.Request) -> httpx.ReadError:
    return httpx.ReadError("connection cut by the test", request=request)


class CutStream(httpx.SyncByteStream):
    def __init__(self, upstream: httpx.Response, request: httpx.Request, events: int) -> None:
        self.upstream, self.request, self.cutter = upstream, request, _Cutter(events)

    def __iter__(self) -> Iterator[bytes]:
        stream = self.upstream.stream
        assert isinstance(stream, httpx.SyncByteStream)
        try:
            for chunk in stream:
                out, cut = self.cutter.feed(chunk)
                if out:
                    yield out
                if cut:
                    raise _cut_error(self.request)
            raise _cut_error(self.request)
        finally:
            stream.close()


class AsyncCutStream(httpx.AsyncByteStream):
    def __init__(self, upstream: httpx.Response, request: httpx.Request, events: int) -> None:
        self.upstream, self.request, self.cutter = upstream, request, _Cutter(events)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self.upstream.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        try:
            async for chunk in stream:
                out, cut = self.cutter.feed(chunk)
                if out:
                    yield out
                if cut:
                    raise _cut_error(self.request)
            raise _cut_error(self.request)
        finally:
            await stream.aclose()


class CuttingTransport(httpx.HTTPTransport):
    """For `LlamaAgentsClient(transport=...)`."""

    def __init__(self, cuts: list[int]) -> None:
        super().__init__()
        self.cuts = list(cuts)
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not _is_events(request) or response.status_code not in (200, 201):
            return response
        self.requests.append(request)
        if not self.cuts:
            return response
        stream = CutStream(response, request, self.cuts.pop(0))
        return httpx.Response(response.status_code, headers=response.headers, stream=stream)


class AsyncCuttingTransport(httpx.AsyncHTTPTransport):
    """For `AsyncLlamaAgentsClient(transport=...)`."""

    def __init__(self, cuts: list[int]) -> None:
        super().__init__()
        self.cuts = list(cuts)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if not _is_events(request) or response.status_code not in (200, 201):
            return response
        self.requests.append(request)
        if not self.cuts:
            return response
        stream = AsyncCutStream(response, request, self.cuts.pop(0))
        return httpx.Response(response.status_code, headers=response.headers, stream=stream)


def last_event_ids(requests: list[httpx.Request]) -> list[str | None]:
    """The `Last-Event-ID` each events request carried."""
    return [request.headers.get("last-event-id") for request in requests]
