"""LLMs for llama-agents: the environment-driven default and the offline fallback.

`default_llm()` returns OpenAI, an OpenAI-compatible server, or `OfflineLLM` depending on
which environment variables are set, so examples run anywhere without edits.
"""

from __future__ import annotations

from llama_agents.llms.errors import describe_llm_failure
from llama_agents.llms.factory import default_llm, describe_llm
from llama_agents.llms.offline import OfflineLLM

__all__ = ["OfflineLLM", "default_llm", "describe_llm", "describe_llm_failure"]
