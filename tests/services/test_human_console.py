"""The human service's console: one reader per process, each line for the request on screen.

The console is driven through a pipe (or a pseudo-terminal) standing in for stdin, so no
real terminal is needed. Requests are answered over HTTP through the service's own app.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import queue
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import TextIO

import httpx
import pytest

from llama_agents import HumanService, SimpleMessageQueue, TaskDefinition, TaskResult
from tests.support.helpers import DEADLINE


class Console:
    """The fake terminal: what the test types, and what the service printed, as it arrives."""

    def __init__(self, write_fd: int, output_fd: int) -> None:
        self.write_fd = write_fd
        self.output_fd = output_fd
        self.files: list[TextIO] = []  # the stdin and stdout file objects, closed last
        self.text = ""
        self.changed = asyncio.Condition()
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(output_fd, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.output_fd, 65536)
        except OSError:
            data = b""
        if not data:
            self.loop.remove_reader(self.output_fd)
            return
        self.text += data.decode(errors="replace")
        self.loop.create_task(_notify(self.changed))

    def type(self, text: str) -> None:
        os.write(self.write_fd, text.encode())

    async def until(self, predicate: Callable[[str], bool]) -> None:
        async with asyncio.timeout(DEADLINE), self.changed:
            await self.changed.wait_for(lambda: predicate(self.text))

    def close(self) -> None:
        """End of input first (a reader still waiting sees it and ends), then the rest."""
        self.loop.remove_reader(self.output_fd)
        for fd in (self.write_fd, self.output_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        for file in self.files:
            with contextlib.suppress(OSError):
                file.close()


async def _notify(condition: asyncio.Condition) -> None:
    async with condition:
        condition.notify_all()


def fake_terminal(monkeypatch: pytest.MonkeyPatch, stdin_fd: int, typing_fd: int) -> Console:
    """stdin reads `stdin_fd` (what is typed into `typing_fd`); stdout is a pipe we read.

    Called from the test itself: pytest's output capture resets `sys.stdout` (and
    `sys.stdin`) between a fixture's setup and the test.
    """
    output_read, output_write = os.pipe()
    console = Console(typing_fd, output_read)
    console.files = [os.fdopen(stdin_fd, "r", buffering=1), os.fdopen(output_write, "w", 1)]
    monkeypatch.setattr(sys, "stdin", console.files[0])
    monkeypatch.setattr(sys, "stdout", console.files[1])
    return console


@contextlib.asynccontextmanager
async def piped_console(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    """stdin is a pipe the test types into; stdout a pipe the test reads."""
    read_fd, write_fd = os.pipe()
    fake = fake_terminal(monkeypatch, read_fd, write_fd)
    try:
        yield fake
    finally:
        fake.close()  # end of input: any reader still waiting sees EOF and ends


async def until_pending(human: HumanService, count: int) -> None:
    """Wait until `count` requests wait for a person (the service notifies on each change)."""
    async with asyncio.timeout(DEADLINE), human._changed:
        await human._changed.wait_for(lambda: len(human.pending()) >= count)


def human_service(name: str = "approver") -> HumanService:
    return HumanService(
        SimpleMessageQueue(), service_name=name, human_input_prompt="Approve {input_str}?"
    )


def ask(human: HumanService, task_id: str, text: str) -> asyncio.Task[TaskResult]:
    return asyncio.create_task(human.run_task(TaskDefinition(input=text, task_id=task_id)))


async def answer_over_http(human: HumanService, request_id: str, text: str) -> None:
    transport = httpx.ASGITransport(app=human.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://human") as http:
        response = await http.post(f"/tasks/{request_id}/handle", json={"result": text})
    assert response.status_code == 200, response.text


async def test_a_typed_line_answers_the_request_on_screen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with piped_console(monkeypatch) as console:
        human = human_service()
        first = ask(human, "task-a", "deploy A")
        request_a = await human.wait_for_request(DEADLINE)
        second = ask(human, "task-b", "deploy B")
        await until_pending(human, 2)

        await answer_over_http(human, request_a.id_, "approved A on the web")
        assert (await asyncio.wait_for(first, DEADLINE)).result == "approved A on the web"
        await console.until(lambda text: "Approve deploy B?" in text)
        console.type("approve B\n")
        assert (await asyncio.wait_for(second, DEADLINE)).result == "approve B"

        shown = console.text
        # Each prompt says which request it is for; A's was withdrawn, then B's shown.
        assert "task-a" in shown and "task-b" in shown
        assert shown.index("Approve deploy A?") < shown.index("Approve deploy B?")
        assert "answered elsewhere" in shown


async def test_a_line_with_no_request_on_screen_answers_nothing_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with piped_console(monkeypatch) as console:
        human = human_service()
        first = ask(human, "task-a", "deploy A")
        await console.until(lambda text: "Approve deploy A?" in text)
        console.type("yes\n")
        assert (await asyncio.wait_for(first, DEADLINE)).result == "yes"
        console.type("stray line\n")  # nothing is on screen: it must not answer the next request
        await console.until(lambda text: "not applied" in text)
        second = ask(human, "task-b", "deploy B")
        await console.until(lambda text: "Approve deploy B?" in text)  # what a person waits for
        console.type("approve B\n")
        assert (await asyncio.wait_for(second, DEADLINE)).result == "approve B"


async def test_many_requests_answered_elsewhere_leave_no_threads_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with piped_console(monkeypatch) as console:
        human = human_service()
        before = threading.active_count()
        for n in range(24):
            asking = ask(human, f"task-{n}", f"change {n}")
            request = await human.wait_for_request(DEADLINE)
            await answer_over_http(human, request.id_, f"ok {n}")
            assert (await asyncio.wait_for(asking, DEADLINE)).result == f"ok {n}"
        after = threading.active_count()
        print(f"threads: {before} before, {after} after 24 requests", file=sys.stderr)
        assert after <= before + 1, "a console reader per request is left waiting"
        # The console still works: the one reader answers the next request.
        last = ask(human, "task-last", "the last change")
        await console.until(lambda text: "Approve the last change?" in text)
        console.type("fine\n")
        assert (await asyncio.wait_for(last, DEADLINE)).result == "fine"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
async def test_half_typed_input_for_a_request_answered_elsewhere_is_discarded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    master, slave = os.openpty()
    terminal = fake_terminal(monkeypatch, slave, master)
    echo = Console(-1, master)  # the terminal echoes what is typed, once it holds it
    try:
        human = human_service()
        first = ask(human, "task-a", "deploy A")
        request_a = await human.wait_for_request(DEADLINE)
        second = ask(human, "task-b", "deploy B")
        await until_pending(human, 2)
        terminal.type("yes for A")  # the person is typing an answer to A...
        await echo.until(lambda text: "yes for A" in text)  # ...the terminal holds it...
        await answer_over_http(human, request_a.id_, "approved A on the web")  # ...A is done
        await asyncio.wait_for(first, DEADLINE)
        terminal.type("\n")  # Enter: the half-typed line was for A; it must not answer B
        terminal.type("approve B\n")
        assert (await asyncio.wait_for(second, DEADLINE)).result == "approve B"
    finally:
        echo.loop.remove_reader(master)
        terminal.close()


async def test_a_notebook_kernels_input_is_what_the_console_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """IPython's kernel replaces `input()` to ask in the notebook: the reader uses it."""
    lines: queue.Queue[str | None] = queue.Queue()

    def kernel_input(prompt: str = "") -> str:
        line = lines.get(timeout=DEADLINE)
        if line is None:
            raise EOFError
        return line

    monkeypatch.setattr(builtins, "input", kernel_input)
    try:
        async with piped_console(monkeypatch) as console:
            human = human_service()
            asking = ask(human, "task-nb", "the notebook change")
            await console.until(lambda text: "Approve the notebook change?" in text)
            lines.put("from the notebook")
            assert (await asyncio.wait_for(asking, DEADLINE)).result == "from the notebook"
    finally:
        lines.put(None)  # the kernel closes: the reader ends
