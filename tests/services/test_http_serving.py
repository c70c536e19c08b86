"""Our HTTP servers' sockets: accepted connections have Nagle's algorithm off (TCP_NODELAY),
so a small response never waits ~40 ms for the client's delayed ACK."""

from __future__ import annotations

import asyncio
import socket

from llama_agents._serving import _listening_socket
from tests.support.helpers import DEADLINE


async def test_accepted_connections_have_tcp_nodelay() -> None:
    family, _, _, _, address = socket.getaddrinfo("127.0.0.1", 0, type=socket.SOCK_STREAM)[0]
    listening = _listening_socket(family, address)
    accepted: asyncio.Future[asyncio.BaseTransport] = asyncio.get_running_loop().create_future()

    class Capture(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if not accepted.done():
                accepted.set_result(transport)

    # The same call uvicorn makes with the socket we hand it.
    server = await asyncio.get_running_loop().create_server(Capture, sock=listening)
    try:
        port = listening.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        transport = await asyncio.wait_for(accepted, DEADLINE)
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        writer.close()
        transport.close()
    finally:
        server.close()
        await server.wait_closed()
