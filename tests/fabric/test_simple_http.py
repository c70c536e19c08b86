"""The embedded queue served over HTTP, and its client used from 'another process'."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from llama_agents import (
    MessageQueueError,
    QueueMessage,
    RemoteMessageConsumer,
    SimpleMessageQueue,
    UnroutableMessageError,
)
from llama_agents._serving import HttpServer
from llama_agents.errors import ConsumerNotFoundError
from tests.support.helpers import DEADLINE, Collector
from tests.support.receiver import serving_receiver


@pytest.fixture
async def served() -> AsyncIterator[SimpleMessageQueue]:
    queue = SimpleMessageQueue(host="127.0.0.1", port=0, max_attempts=2)
    task = asyncio.create_task(queue.launch_server())
    await queue.wait_until_serving()
    yield queue
    await queue.close()
    await asyncio.wait_for(task, DEADLINE)


async def test_client_publishes_to_an_in_process_consumer(served: SimpleMessageQueue) -> None:
    collector = Collector()
    start = await served.register_consumer(collector.consumer("local"))
    consuming = asyncio.create_task(start())
    client = served.client
    message = QueueMessage(type="local", data={"from": "client"})
    await client.publish(message)
    [got] = await collector.wait_for(1)
    assert got.id_ == message.id_ and got.data == {"from": "client"}
    with pytest.raises(UnroutableMessageError):
        await client.publish(QueueMessage(type="nobody"))
    await client.close()
    consuming.cancel()


async def test_remote_consumer_registered_through_the_client(served: SimpleMessageQueue) -> None:
    client = served.client
    async with serving_receiver() as receiver:
        consumer = RemoteMessageConsumer(url=receiver.url, message_type="remote")
        start = await client.register_consumer(consumer)
        await start()  # returns at once: the server already delivers to the URL
        listed = await client.list_consumers()
        assert [(c["id_"], c["message_type"], c["url"]) for c in listed] == [
            (consumer.id_, "remote", receiver.url)
        ]

        message = QueueMessage(type="remote", data={"n": 1})
        await client.publish(message)
        [got] = await receiver.collector.wait_for(1)
        assert got.id_ == message.id_

        await client.deregister_consumer(consumer)
        assert await client.list_consumers() == []
        with pytest.raises(ConsumerNotFoundError):
            await client.deregister_consumer(consumer)
    await client.close()


async def test_failing_remote_endpoint_is_retried_then_dead_lettered(
    served: SimpleMessageQueue,
) -> None:
    client = served.client
    async with serving_receiver() as receiver:
        receiver.status = 500
        consumer = RemoteMessageConsumer(url=receiver.url, message_type="flaky_remote")
        await client.register_consumer(consumer)
        message = QueueMessage(type="flaky_remote")
        await client.publish(message)
        [letter] = await client.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
        assert letter.attempts == 2
        assert "500" in letter.reason
        assert letter.message().id_ == message.id_
        assert receiver.requests == 2
    await client.close()


async def test_server_refuses_bad_input(served: SimpleMessageQueue) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        response = await http.post("/publish", content=b"not json")
        assert response.status_code == 422
        assert "cannot decode" in response.json()["detail"]
        response = await http.post("/register_consumer", json={"id_": "x"})
        assert response.status_code == 422
        response = await http.post("/queues/bad%20name")
        assert response.status_code == 422
        status = await http.get("/")
        assert status.json()["status"] == "running"
    client = served.client
    with pytest.raises(MessageQueueError, match="422"):
        await client.publish_raw(b"garbage", "anything")
    with pytest.raises(TypeError, match="RemoteMessageConsumer"):
        await client.register_consumer(Collector().consumer("x"))
    await client.close()


async def test_client_reports_an_unreachable_server() -> None:
    client = SimpleMessageQueue(host="127.0.0.1", port=1).client
    with pytest.raises(MessageQueueError, match="cannot reach"):
        await client.publish(QueueMessage(type="x"))
    await client.close()


# --------------------------------------------------------------------------- the layering


def _imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_core_queue_does_not_know_its_http_face() -> None:
    import llama_agents.message_queues.simple as simple

    folder = Path(simple.__file__).parent
    core = _imported_modules(folder / "queue.py")
    assert not {m for m in core if m.endswith(("simple.server", "simple.client"))}, core
    face = _imported_modules(folder / "server.py")
    assert not {m for m in face if m.endswith("simple.queue")}, face


# --------------------------------------------------------------------------- the API key

API_KEY = "s3cret-key"


@pytest.fixture
async def guarded(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SimpleMessageQueue]:
    """A served queue in a system whose API key is set (`LLAMA_AGENTS_API_KEY`)."""
    monkeypatch.setenv("LLAMA_AGENTS_API_KEY", API_KEY)
    queue = SimpleMessageQueue(host="127.0.0.1", port=0, max_attempts=2)
    task = asyncio.create_task(queue.launch_server())
    await queue.wait_until_serving()
    yield queue
    await queue.close()
    await asyncio.wait_for(task, DEADLINE)


class GuardedReceiver:
    """An HTTP consumer that asks for the system's API key, as every served service does."""

    def __init__(self) -> None:
        self.authorized: list[bool] = []
        self.collector = Collector()
        app = FastAPI()

        @app.post("/messages")
        async def receive(request: Request) -> Response:
            ok = request.headers.get("authorization") == f"Bearer {API_KEY}"
            self.authorized.append(ok)
            await self.collector.notify()
            if not ok:
                return Response(status_code=401)
            await self.collector.handle(QueueMessage.decode(await request.body()))
            return Response(status_code=200)

        self.server = HttpServer(app, host="127.0.0.1", port=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/messages"


async def test_every_route_but_health_needs_the_api_key(guarded: SimpleMessageQueue) -> None:
    definition = {"id_": "intruder", "message_type": "control_plane", "url": "http://a.test/"}
    routes = [
        ("GET", "/", None),
        ("POST", "/publish", None),
        ("POST", "/queues/anything", None),
        ("POST", "/register_consumer", definition),
        ("POST", "/deregister_consumer", definition),
        ("GET", "/consumers", None),
        ("GET", "/get_consumers/control_plane", None),
        ("GET", "/dead_letters", None),
        ("POST", "/dead_letters/take", None),
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
    ]
    async with httpx.AsyncClient(base_url=guarded.base_url) as http:
        assert (await http.get("/health")).status_code == 200
        refused = {}
        for method, path, body in routes:
            response = await http.request(method, path, json=body)
            refused[f"{method} {path}"] = response.status_code
        assert refused == {route: 401 for route in refused}
        wrong = await http.get("/consumers", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
        right = await http.get("/consumers", headers={"X-API-Key": API_KEY})
        assert right.status_code == 200 and right.json() == []
        docs = await http.get("/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"})
        assert docs.status_code == 200 and "/publish" in docs.json()["paths"]
    assert guarded.consumers() == []  # the intruder registered nothing


async def test_the_client_and_remote_consumers_send_the_api_key(
    guarded: SimpleMessageQueue,
) -> None:
    receiver = GuardedReceiver()
    serving = asyncio.create_task(receiver.server.serve())
    await receiver.server.wait_started()
    client = guarded.client
    try:
        consumer = RemoteMessageConsumer(url=receiver.url, message_type="guarded_remote")
        await client.register_consumer(consumer)
        message = QueueMessage(type="guarded_remote")
        await client.publish(message)
        await receiver.collector.wait_until(lambda: bool(receiver.authorized))
        assert receiver.authorized[0], "the queue delivered without the API key"
        [got] = await receiver.collector.wait_for(1)
        assert got.id_ == message.id_
        assert await client.fetch_dead_letters(remove=False) == []
        await client.deregister_consumer(consumer)
    finally:
        await client.close()
        receiver.server.stop()
        await asyncio.wait_for(serving, DEADLINE)


async def test_reading_dead_letters_over_http_never_deletes_them(
    served: SimpleMessageQueue,
) -> None:
    collector = Collector()
    start = await served.register_consumer(collector.consumer("poisoned"))
    consuming = asyncio.create_task(start())
    await served.publish_raw(b"not a message", "poisoned")
    await served.fetch_dead_letters(wait_for=1, remove=False, timeout=DEADLINE)
    client = served.client
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        # A crawler, a browser, a monitoring probe: reading twice reads the same letter.
        first = (await http.get("/dead_letters")).json()
        second = (await http.get("/dead_letters")).json()
        assert len(first) == 1 and first == second
        asked_to_remove = await http.get("/dead_letters", params={"remove": "true"})
        assert asked_to_remove.status_code == 400
        assert "POST /dead_letters/take" in asked_to_remove.json()["detail"]
        assert len((await http.get("/dead_letters")).json()) == 1
        peeked = await client.fetch_dead_letters(remove=False)
        assert [letter.reason for letter in peeked] == [first[0]["reason"]]
        taken = await client.fetch_dead_letters()  # removes: a POST, never a GET
        assert [letter.reason for letter in taken] == [first[0]["reason"]]
        assert (await http.get("/dead_letters")).json() == []
    await client.close()
    consuming.cancel()


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://example.test/",
        "javascript:alert(1)",
        "http://",
        "https:///no-host",
    ],
)
async def test_register_consumer_refuses_urls_that_are_not_http(
    served: SimpleMessageQueue, url: str
) -> None:
    definition = {"id_": "odd", "message_type": "control_plane", "url": url}
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        response = await http.post("/register_consumer", json=definition)
    assert response.status_code == 422, response.text
    assert "http(s) URL" in response.text
    assert served.consumers() == []
