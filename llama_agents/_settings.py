"""Settings read from the environment, all under the `LLAMA_AGENTS_` prefix.

Arguments always win; the environment fills in what the caller left out; the defaults work
on a developer's machine.
"""

from __future__ import annotations

import os

from llama_agents.errors import ConfigurationError

ENV_PREFIX = "LLAMA_AGENTS_"
DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"
DEFAULT_EXCHANGE = "llama_agents"
#: The embedded queue's HTTP face listens next to the control plane's 8000, so the README's
#: defaults can run in one process without "address in use".
DEFAULT_SIMPLE_QUEUE_PORT = 8001


def env_str(name: str, default: str) -> str:
    """`LLAMA_AGENTS_<name>` from the environment, else `default`."""
    value = os.environ.get(ENV_PREFIX + name)
    return value if value else default


def env_float(name: str, default: float) -> float:
    """`LLAMA_AGENTS_<name>` as a float; a malformed value is a clear configuration error."""
    raw = os.environ.get(ENV_PREFIX + name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{ENV_PREFIX}{name}={raw!r} is not a number") from None


def env_int(name: str, default: int) -> int:
    """`LLAMA_AGENTS_<name>` as an int; a malformed value is a clear configuration error."""
    raw = os.environ.get(ENV_PREFIX + name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{ENV_PREFIX}{name}={raw!r} is not an integer") from None


def env_optional_int(name: str) -> int | None:
    """`LLAMA_AGENTS_<name>` as an int, or None when unset (the library leaves it open)."""
    raw = os.environ.get(ENV_PREFIX + name)
    if not raw:
        return None
    return env_int(name, 0)
