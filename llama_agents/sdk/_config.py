"""The settings both clients share, checked once when a client is made."""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from llama_agents.errors import ConfigurationError
from llama_agents.messages.records import KEEPALIVE_SECONDS

API_KEY_ENV = "LLAMA_AGENTS_API_KEY"
DEFAULT_TIMEOUT = 30.0
#: An event stream that says nothing (not even a keep-alive) for this long is dead.
STREAM_IDLE_SECONDS = 4 * KEEPALIVE_SECONDS


@dataclass(frozen=True)
class ClientConfig:
    """Validated settings shared by both clients."""

    base_url: str
    headers: dict[str, str]
    timeout: float | None

    @classmethod
    def build(cls, url: str, api_key: str | None, timeout: float | None) -> ClientConfig:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be positive seconds or None, not {timeout!r}")
        headers = {"accept": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return cls(base_url=validate_url(url), headers=headers, timeout=timeout)

    def hold_timeout(self, hold: float) -> httpx.Timeout:
        """The request timeout of a call the server may hold `hold` seconds before answering."""
        read = None if self.timeout is None else self.timeout + hold
        return httpx.Timeout(self.timeout, read=read)

    def stream_timeout(self) -> httpx.Timeout:
        """An event stream may be idle between keep-alives; longer silence means it is gone."""
        read = None if self.timeout is None else max(self.timeout, STREAM_IDLE_SECONDS)
        return httpx.Timeout(self.timeout, read=read)


def validate_url(url: str) -> str:
    """The control plane's base URL without a trailing slash; a clear error if unusable."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("the control plane URL is empty (e.g. http://127.0.0.1:8000)")
    url = url.strip().rstrip("/")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"invalid control plane URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"invalid control plane URL {url!r}: expected http(s)://host[:port], "
            "e.g. http://127.0.0.1:8000"
        )
    return url
