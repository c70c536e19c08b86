"""A small HTTP endpoint that receives messages, for remote-consumer tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from llama_agents import QueueMessage
from llama_agents._serving import HttpServer
from tests.support.helpers import Collector


class Receiver:
    """Serves `POST /messages`; answers with `status` (settable), records what it got."""

    def __init__(self) -> None:
        self.collector = Collector()
        self.status = 200
        self.hang = asyncio.Event()  # set to make the endpoint hold requests until shutdown
        self.release = asyncio.Event()
        self.requests = 0
        app = FastAPI()

        @app.post("/messages")
        async def receive(request: Request) -> Response:
            self.requests += 1
            await self.collector.notify()
            if self.hang.is_set():
                await self.release.wait()
            if self.status >= 300:
                return Response(status_code=self.status, content="refused")
            await self.collector.handle(QueueMessage.decode(await request.body()))
            return Response(status_code=self.status)

        self.server = HttpServer(app, host="127.0.0.1", port=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/messages"


@asynccontextmanager
async def serving_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    task = asyncio.create_task(receiver.server.serve())
    await receiver.server.wait_started()
    try:
        yield receiver
    finally:
        receiver.release.set()
        receiver.server.stop()
        await asyncio.wait_for(task, 15)
