"""Sessions: tasks that continue one another's context, one at a time, in order.

The `Call`s of `/sessions`, and `Session` / `AsyncSession`: a session's id bound to a client,
so a conversation is `session.run("...")` turn after turn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from llama_agents.errors import ConfigurationError, SessionExistsError, SessionNotFoundError
from llama_agents.messages import TaskResult
from llama_agents.messages.records import SessionInfo

from ._protocol import Call, ErrorFactory, identifier, model, segment

if TYPE_CHECKING:
    from ._async_streams import AsyncTaskEventStream
    from ._sync_streams import TaskEventStream


class SessionClient(Protocol):
    """What a `Session` asks of its client (the client module imports this one, not back)."""

    def create_task(
        self,
        input: str,
        task_id: str | None = None,
        result_key: str | None = None,
        *,
        service: str | None = None,
        start_event: dict[str, Any] | None = None,
        session_id: str | None = None,
        publish_result: bool = True,
    ) -> str: ...

    def stream_task(
        self,
        input: str,
        task_id: str | None = None,
        result_key: str | None = None,
        *,
        service: str | None = None,
        start_event: dict[str, Any] | None = None,
        session_id: str | None = None,
        publish_result: bool = True,
    ) -> TaskEventStream: ...

    def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskResult: ...

    def get_session(self, session_id: str) -> SessionInfo: ...

    def delete_session(self, session_id: str) -> None: ...


class AsyncSessionClient(Protocol):
    """What an `AsyncSession` asks of its client."""

    async def create_task(
        self,
        input: str,
        task_id: str | None = None,
        result_key: str | None = None,
        *,
        service: str | None = None,
        start_event: dict[str, Any] | None = None,
        session_id: str | None = None,
        publish_result: bool = True,
    ) -> str: ...

    async def stream_task(
        self,
        input: str,
        task_id: str | None = None,
        result_key: str | None = None,
        *,
        service: str | None = None,
        start_event: dict[str, Any] | None = None,
        session_id: str | None = None,
        publish_result: bool = True,
    ) -> AsyncTaskEventStream: ...

    async def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskResult: ...

    async def get_session(self, session_id: str) -> SessionInfo: ...

    async def delete_session(self, session_id: str) -> None: ...


def _missing(session_id: str) -> dict[int, ErrorFactory]:
    return {404: lambda _: SessionNotFoundError(session_id)}


def create_session(session_id: str | None = None) -> Call[SessionInfo]:
    body: dict[str, Any] = {}
    if session_id is not None:
        identifier(session_id, "session_id")
        if any(c.isspace() for c in session_id):
            raise ConfigurationError(f"session_id {session_id!r} cannot contain spaces")
        body["session_id"] = session_id
    return Call(
        "POST", "/sessions", model(SessionInfo), json=body, errors={409: SessionExistsError}
    )


def get_session(session_id: str) -> Call[SessionInfo]:
    path = f"/sessions/{segment(session_id, 'session_id')}"
    return Call("GET", path, model(SessionInfo), errors=_missing(session_id))


def delete_session(session_id: str) -> Call[None]:
    path = f"/sessions/{segment(session_id, 'session_id')}"
    return Call("DELETE", path, lambda _: None, errors=_missing(session_id))


class Session:
    """A session on a control plane: each task created through it continues the last one.

    Made by `LlamaAgentsClient.create_session()`; uses that client's connections.
    """

    def __init__(self, client: SessionClient, session_id: str) -> None:
        self._client = client
        self.session_id = session_id

    def __repr__(self) -> str:
        return f"Session({self.session_id!r})"

    def create_task(self, input: str, **options: Any) -> str:
        """Submit a task in this session (it starts once the session's previous one ended);
        `options` are `create_task`'s (`service=`, `task_id=`, `start_event=` ...)."""
        return self._client.create_task(input, session_id=self.session_id, **options)

    def run(self, input: str, timeout: float | None = None, **options: Any) -> TaskResult:
        """Submit a task in this session and wait for its result (a turn of a conversation)."""
        task_id = self.create_task(input, **options)
        return self._client.wait_for_result(task_id, timeout=timeout)

    def stream_task(self, input: str, **options: Any) -> TaskEventStream:
        """Submit a task in this session and stream its events, in one request (a turn whose
        tokens show as they come); see the client's `stream_task`."""
        return self._client.stream_task(input, session_id=self.session_id, **options)

    def info(self) -> SessionInfo:
        """Its tasks in order, the one running now, the ones waiting their turn."""
        return self._client.get_session(self.session_id)

    def delete(self) -> None:
        """Forget the session and the context it kept (its tasks stay)."""
        self._client.delete_session(self.session_id)


class AsyncSession:
    """`Session` for `AsyncLlamaAgentsClient`: the same methods, as coroutines."""

    def __init__(self, client: AsyncSessionClient, session_id: str) -> None:
        self._client = client
        self.session_id = session_id

    def __repr__(self) -> str:
        return f"AsyncSession({self.session_id!r})"

    async def create_task(self, input: str, **options: Any) -> str:
        """Submit a task in this session (it starts once the session's previous one ended);
        `options` are `create_task`'s (`service=`, `task_id=`, `start_event=` ...)."""
        return await self._client.create_task(input, session_id=self.session_id, **options)

    async def run(self, input: str, timeout: float | None = None, **options: Any) -> TaskResult:
        """Submit a task in this session and wait for its result (a turn of a conversation)."""
        task_id = await self.create_task(input, **options)
        return await self._client.wait_for_result(task_id, timeout=timeout)

    async def stream_task(self, input: str, **options: Any) -> AsyncTaskEventStream:
        """Submit a task in this session and stream its events, in one request (a turn whose
        tokens show as they come); see the client's `stream_task`."""
        return await self._client.stream_task(input, session_id=self.session_id, **options)

    async def info(self) -> SessionInfo:
        """Its tasks in order, the one running now, the ones waiting their turn."""
        return await self._client.get_session(self.session_id)

    async def delete(self) -> None:
        """Forget the session and the context it kept (its tasks stay)."""
        await self._client.delete_session(self.session_id)
