"""Launchers: run a whole system in one process."""

from llama_agents.launchers.local import LocalLauncher

__all__ = ["LocalLauncher"]
