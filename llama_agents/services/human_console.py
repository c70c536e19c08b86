"""The console a `HumanService` asks on: one reader per process, each line for the request
on screen.

A thread per prompt (`input()` in the default executor) cannot be cancelled: after a request
was answered over HTTP or timed out, its thread still waits, the next line typed goes to a
stale prompt (or, with the threads racing, to another task's request), and a few dozen of
them exhaust the executor. Here one daemon thread reads stdin for the whole process; the
requests wait in a queue and the oldest is on screen, labelled with its task. A line answers
the request on screen when it was read; a request answered elsewhere leaves the screen with
a notice, whatever was half-typed for it is discarded (on a terminal), and the next request
is shown. A line read while nothing is on screen answers nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import sys
import threading
import weakref
from dataclasses import dataclass, field
from typing import TextIO

from llama_agents.errors import ConsoleClosedError

try:
    import termios
except ImportError:  # pragma: no cover - Windows
    termios = None  # type: ignore[assignment]


@dataclass(eq=False)
class _Prompt:
    """One request waiting on the console."""

    label: str
    text: str
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[str] = field(init=False)

    def __post_init__(self) -> None:
        self.answer = self.loop.create_future()

    def settle(self, line: str | None) -> None:
        """Resolve from any thread: the line typed, or None for end of input."""

        def settle() -> None:
            if self.answer.done():
                return  # answered elsewhere meanwhile: the line is not applied to anyone else
            if line is None:
                self.answer.set_exception(ConsoleClosedError("end of console input"))
            else:
                self.answer.set_result(line)

        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits
            self.loop.call_soon_threadsafe(settle)


_registry_lock = threading.Lock()
#: The console of each input stream, while in use (its reader thread holds it).
_consoles: weakref.WeakValueDictionary[int, Console] = weakref.WeakValueDictionary()


class Console:
    """Reads `stream` (stdin) with one thread; shows one request at a time on `output`."""

    def __init__(self, stream: TextIO, output: TextIO) -> None:
        self.stream = stream
        self.output = output
        self._lock = threading.Lock()
        self._waiting: list[_Prompt] = []
        self._shown: _Prompt | None = None
        self._reader: threading.Thread | None = None
        self._ended = False

    @classmethod
    def for_stdin(cls) -> Console:
        """The console of this process's current stdin (one per stream, shared)."""
        stream, output = sys.stdin, sys.stdout
        with _registry_lock:
            console = _consoles.get(id(stream))
            if console is None or console.stream is not stream:
                console = cls(stream, output)
                _consoles[id(stream)] = console
            return console

    async def ask(self, prompt: str, label: str = "") -> str:
        """Show `prompt` when its turn comes; return the line typed for it.

        Raises `EOFError` when the input has ended (no console: a container, a closed pipe).
        Cancelling withdraws the request from the screen.
        """
        entry = _Prompt(label, prompt, asyncio.get_running_loop())
        with self._lock:
            if self._ended:
                raise ConsoleClosedError("end of console input")
            self._waiting.append(entry)
            if self._shown is None:
                self._show_next()
            self._start_reader()
        try:
            return await entry.answer
        finally:
            self._withdraw(entry)

    # -- under self._lock ------------------------------------------------------------------

    def _start_reader(self) -> None:
        if self._reader is None:
            self._reader = threading.Thread(
                target=self._read_lines, name="llama-agents-console", daemon=True
            )
            self._reader.start()

    def _show_next(self) -> None:
        self._shown = self._waiting[0] if self._waiting else None
        if self._shown is not None:
            waiting = len(self._waiting)
            more = f", {waiting - 1} more waiting" if waiting > 1 else ""
            self._write(f"\n--- {self._shown.label or 'request'}{more} ---\n{self._shown.text}\n> ")

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.output.write(text)
            self.output.flush()

    def _discard_half_typed(self) -> None:
        """Drop what was typed but not entered: it was meant for the request that left."""
        if termios is None:
            return
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if self.stream.isatty():
                termios.tcflush(self.stream.fileno(), termios.TCIFLUSH)

    # -- from the event loop ---------------------------------------------------------------

    def _withdraw(self, entry: _Prompt) -> None:
        with self._lock:
            if entry in self._waiting:
                self._waiting.remove(entry)
            if self._shown is entry:
                self._write(f"\n--- {entry.label or 'request'}: answered elsewhere ---\n")
                self._discard_half_typed()
                self._show_next()

    # -- from the reader thread ------------------------------------------------------------

    def _read_lines(self) -> None:
        while True:
            try:
                line = self._read_line()
            except (EOFError, OSError, ValueError):
                self._end()
                return
            self._take(line)

    def _read_line(self) -> str:
        """One line, without its end; `EOFError` at the end of input.

        A notebook kernel (IPython) replaces `input()` to ask in the notebook: then it is
        used. Otherwise the stream is read as it is: on a terminal the line being typed then
        sits in the terminal, where `_discard_half_typed` can drop it (GNU readline's own
        buffer, which the builtin `input()` would use, cannot be).
        """
        if self.stream is sys.stdin and not inspect.isbuiltin(builtins.input):
            return input()
        line = self.stream.readline()
        if not line:
            raise ConsoleClosedError("end of console input")
        return line.rstrip("\r\n")

    def _take(self, line: str) -> None:
        with self._lock:
            entry = self._shown
            if entry is None:
                self._write("(no request is waiting for an answer: that line was not applied)\n")
            elif not line.strip():
                self._show_next()  # an empty line answers nothing: ask again
            else:
                self._waiting.remove(entry)
                entry.settle(line)
                self._show_next()

    def _end(self) -> None:
        with self._lock:
            self._ended = True
            waiting, self._waiting, self._shown = self._waiting, [], None
        for entry in waiting:
            entry.settle(None)


async def console_input(prompt: str) -> str:
    """Ask on this process's console (one shared reader; see `Console`)."""
    return await Console.for_stdin().ask(prompt)
