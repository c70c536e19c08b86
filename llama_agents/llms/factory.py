"""Pick the LLM from the environment, so the same code runs with OpenAI, a local server, or
nothing at all.

Order: an OpenAI-compatible server (`LLAMA_AGENTS_LLM_BASE_URL`, or the OpenAI SDK's
`OPENAI_BASE_URL` / `OPENAI_API_BASE`), then OpenAI itself (`OPENAI_API_KEY`), then the
offline LLM, which needs neither network nor key.

Their clients retry by one policy (retries.py): transient failures (429, 5xx, a network blip)
are retried with backoff; what cannot succeed (a refused connection to this machine, 401,
404) fails at once, and the failure names the model and the URL (errors.py).
"""

from __future__ import annotations

import os
from typing import Any

from llama_index.core.llms import LLM

from llama_agents.errors import ConfigurationError
from llama_agents.llms.offline import OfflineLLM
from llama_agents.llms.retries import AsyncRetryingTransport, RetryingTransport

BASE_URL_ENV_VARS = ("LLAMA_AGENTS_LLM_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_BASE")
MODEL_ENV_VAR = "LLAMA_AGENTS_LLM_MODEL"
API_KEY_ENV_VAR = "OPENAI_API_KEY"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
# Local servers (vLLM, Ollama, llama.cpp) ignore the key, but the OpenAI client insists on one.
PLACEHOLDER_API_KEY = "not-needed"
_OPENAI_API_BASE = "https://api.openai.com/v1"


def _env(name: str) -> str | None:
    """An environment variable, with empty or blank values counting as unset."""
    value = os.environ.get(name, "").strip()
    return value or None


def _base_url() -> tuple[str, str] | None:
    """(variable name, URL) of the first base-URL variable that is set."""
    for name in BASE_URL_ENV_VARS:
        value = _env(name)
        if value:
            return name, value
    return None


def _retry_policy(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The client settings that make our retry policy the only one (unless the caller chose
    `max_retries` or its own HTTP clients: then theirs applies)."""
    if {"max_retries", "http_client", "async_http_client"} & kwargs.keys():
        return kwargs
    import openai

    return {
        **kwargs,
        "max_retries": 0,
        "http_client": openai.DefaultHttpxClient(transport=RetryingTransport()),
        "async_http_client": openai.DefaultAsyncHttpxClient(transport=AsyncRetryingTransport()),
    }


def default_llm(model: str | None = None, **kwargs: Any) -> LLM:
    """The LLM the environment asks for; `model` overrides `LLAMA_AGENTS_LLM_MODEL`.

    Extra keyword arguments go to the OpenAI / OpenAI-compatible client (temperature,
    context_window, timeout, ...); the offline LLM has no such settings and ignores them.
    Constructing a client makes no network call. Retries follow `llms.retries.RetryPolicy`
    unless `max_retries` (or an HTTP client) is given.
    """
    model = model or _env(MODEL_ENV_VAR)
    base = _base_url()
    if base is not None:
        variable, url = base
        if not model:
            raise ConfigurationError(
                f"{variable}={url!r} points at an OpenAI-compatible server, but no model is "
                f"named: set {MODEL_ENV_VAR} to a model that server serves "
                "(e.g. 'llama3.1:8b' for Ollama)"
            )
        # The package ships no py.typed marker, hence the ignore.
        from llama_index.llms.openai_like import OpenAILike  # type: ignore[import-untyped]

        compatible: LLM = OpenAILike(
            model=model,
            api_base=url,
            api_key=_env(API_KEY_ENV_VAR) or PLACEHOLDER_API_KEY,
            is_chat_model=True,
            is_function_calling_model=True,
            **_retry_policy(kwargs),
        )
        return compatible
    if _env(API_KEY_ENV_VAR):
        from llama_index.llms.openai import OpenAI

        return OpenAI(model=model or DEFAULT_OPENAI_MODEL, **_retry_policy(kwargs))
    return OfflineLLM()


def describe_llm(llm: LLM) -> str:
    """One line saying which model answers, for the CLI and logs ("who am I talking to?")."""
    if isinstance(llm, OfflineLLM):
        return f"offline function-calling LLM (no {API_KEY_ENV_VAR} or {BASE_URL_ENV_VARS[0]} set)"
    # Imported here so describing the offline LLM never loads the OpenAI SDK.
    from llama_index.llms.openai import OpenAI

    if isinstance(llm, OpenAI):
        api_base = str(llm.api_base or "").rstrip("/")
        if api_base and api_base != _OPENAI_API_BASE:
            return f"OpenAI-compatible server at {api_base} (model {llm.model})"
        return f"OpenAI {llm.model}"
    try:
        model_name = llm.metadata.model_name
    except Exception:  # a broken metadata property must not break a description
        model_name = "unknown model"
    return f"{llm.class_name()} ({model_name})"


__all__ = ["default_llm", "describe_llm"]
