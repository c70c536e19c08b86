"""The `llama-agents` command line."""

from llama_agents.console.app import main

__all__ = ["main"]
