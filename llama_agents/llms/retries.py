"""Retrying LLM calls that may succeed later, and only those.

The OpenAI client retries every connection error, and llama-index retries again around it:
a refused connection to a local server took 15 s to report. This transport makes one policy
for both: a transient answer (408, 409, 429, 5xx; honouring `Retry-After`) or a network
blip is retried with backoff; a refused connection to this machine (nothing listens there),
and any other answer (401, 404, 400, ...), is returned at once. The client it serves is built
with `max_retries=0`, so nothing else retries.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from dataclasses import dataclass

import httpx

logger = logging.getLogger("llama_agents.llms")

TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_RETRIED_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a transient failure is retried."""

    retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Seconds before retry number `attempt + 1` (with jitter; `Retry-After` wins)."""
        if response is not None:
            advised = _retry_after(response)
            if advised is not None:
                return min(advised, self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def should_retry_error(self, exc: Exception, request: httpx.Request, attempt: int) -> bool:
        if attempt >= self.retries or not isinstance(exc, _RETRIED_ERRORS):
            return False
        # Nothing listening on this machine will not start listening within seconds.
        return not (isinstance(exc, httpx.ConnectError) and is_loopback(request.url.host))

    def should_retry_status(self, response: httpx.Response, attempt: int) -> bool:
        return attempt < self.retries and response.status_code in TRANSIENT_STATUSES

    def log_retry(self, request: httpx.Request, why: str, delay: float, attempt: int) -> None:
        url = request.url.copy_with(query=None, fragment=None)
        logger.warning(
            "LLM call to %s: %s; retrying in %.1fs (retry %d of %d)",
            url,
            why,
            delay,
            attempt + 1,
            self.retries,
        )


def is_loopback(host: str) -> bool:
    """True for this machine: localhost, 127.0.0.0/8, ::1."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after-ms")
    if raw:
        try:
            return float(raw) / 1000
        except ValueError:
            pass
    raw = response.headers.get("retry-after")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None  # an HTTP date: fall back to backoff


class AsyncRetryingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport with `RetryPolicy` (for async clients)."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None
    ) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.policy = policy or RetryPolicy()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self.inner.handle_async_request(request)
            except Exception as exc:
                if not self.policy.should_retry_error(exc, request, attempt):
                    raise
                delay = self.policy.delay(attempt)
                self.policy.log_retry(request, f"{type(exc).__name__}: {exc}", delay, attempt)
            else:
                if not self.policy.should_retry_status(response, attempt):
                    return response
                await response.aclose()
                delay = self.policy.delay(attempt, response)
                self.policy.log_retry(request, f"HTTP {response.status_code}", delay, attempt)
            await asyncio.sleep(delay)  # backoff before the next attempt
            attempt += 1

    async def aclose(self) -> None:
        await self.inner.aclose()


class RetryingTransport(httpx.BaseTransport):
    """Wraps a transport with `RetryPolicy` (for blocking clients)."""

    def __init__(
        self, inner: httpx.BaseTransport | None = None, policy: RetryPolicy | None = None
    ) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.policy = policy or RetryPolicy()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self.inner.handle_request(request)
            except Exception as exc:
                if not self.policy.should_retry_error(exc, request, attempt):
                    raise
                delay = self.policy.delay(attempt)
                self.policy.log_retry(request, f"{type(exc).__name__}: {exc}", delay, attempt)
            else:
                if not self.policy.should_retry_status(response, attempt):
                    return response
                response.close()
                delay = self.policy.delay(attempt, response)
                self.policy.log_retry(request, f"HTTP {response.status_code}", delay, attempt)
            time.sleep(delay)  # a blocking client's backoff, off any event loop
            attempt += 1

    def close(self) -> None:
        self.inner.close()
