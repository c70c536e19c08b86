"""`SimpleMessageQueue`: the embedded queue, which can also be served over HTTP.

The core (`EmbeddedQueue`) knows nothing of HTTP; this class adds its HTTP face (server.py)
and a client for other processes (client.py), so the dependencies run one way only.
"""

from __future__ import annotations

import asyncio

from llama_agents._auth import configured_api_key
from llama_agents._settings import DEFAULT_SIMPLE_QUEUE_PORT, env_int, env_str
from llama_agents.message_queues.simple.client import SimpleRemoteClientMessageQueue
from llama_agents.message_queues.simple.queue import EmbeddedQueue
from llama_agents.message_queues.simple.server import SimpleMessageQueueServer


class SimpleMessageQueue(EmbeddedQueue):
    """The embedded message queue: runs in this process, needs no broker.

    `launch_server()` also serves it over HTTP on `host:port` (default
    `LLAMA_AGENTS_SIMPLE_QUEUE_HOST` / `_PORT`, else 127.0.0.1:8001, next to the control
    plane's 8000), and `.client` gives a queue object for other processes that talks to
    that server. With an API key (`api_key`, else `LLAMA_AGENTS_API_KEY`) every route but
    `/health` asks for it, and the deliveries to remote consumers carry it.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        api_key: str | None = None,
        prefetch: int = 10,
        max_attempts: int = 3,
        drain_timeout: float = 30.0,
    ) -> None:
        super().__init__(prefetch=prefetch, max_attempts=max_attempts, drain_timeout=drain_timeout)
        self.host = host or env_str("SIMPLE_QUEUE_HOST", "127.0.0.1")
        self.port = (
            port if port is not None else env_int("SIMPLE_QUEUE_PORT", DEFAULT_SIMPLE_QUEUE_PORT)
        )
        self.api_key = configured_api_key(api_key)
        self._serving = asyncio.Event()
        self._server: SimpleMessageQueueServer | None = None

    async def launch_server(self) -> None:
        """Serve this queue over HTTP until `stop_server()`, `close()` or cancellation."""
        self._server = SimpleMessageQueueServer(
            self, host=self.host, port=self.port, api_key=self.api_key
        )
        try:
            await self._server.serve(on_started=self._on_serving)
        finally:
            self._server = None
            self._serving.clear()

    def _on_serving(self, port: int) -> None:
        self.port = port
        self._serving.set()

    def stop_server(self) -> None:
        """Ask `launch_server` to return."""
        if self._server is not None:
            self._server.stop()

    async def wait_until_serving(self, timeout: float = 10.0) -> str:
        """Wait until `launch_server()` accepts connections; return its base URL."""
        async with asyncio.timeout(timeout):
            await self._serving.wait()
        return self.base_url

    @property
    def base_url(self) -> str:
        """Where `launch_server()` serves this queue."""
        return f"http://{self.host}:{self.port}"

    @property
    def client(self) -> SimpleRemoteClientMessageQueue:
        """A queue object that talks to this queue's HTTP server (for other processes)."""
        return SimpleRemoteClientMessageQueue(base_url=self.base_url, api_key=self.api_key)

    async def close(self) -> None:
        await super().close()
        self.stop_server()
