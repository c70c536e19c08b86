"""The `llama-agents` command line."""

from llama_agents.cli.app import main

__all__ = ["main"]
