"""Launchers: run a whole system in one process."""

from llama_agents.launchers.local import LocalLauncher
from llama_agents.launchers.server import ServerLauncher

__all__ = ["LocalLauncher", "ServerLauncher"]
