"""Calls whose caller is gone: a reply nobody can take is dropped, never a reason to run the
work again; a call whose caller gave up (its expiry passed) is not run at all. On both queues.

The work here stands for something with effects (an e-mail sent): the tests count runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import pytest
from llama_index.core.tools import FunctionTool

from llama_agents import ComponentService, QueueMessage, ServiceAsTool
from llama_agents.errors import UnroutableMessageError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.services.tool import ToolService
from llama_agents.tools import MetaServiceTool, ReplyInbox
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Mailer:
    """Sends 'e-mails', counting them; holds each send until released."""

    def __init__(self, *, hold: bool) -> None:
        self.sent: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def send_email(self, to: str) -> str:
        """Sends an e-mail to `to`."""
        self.sent.append(to)
        self.entered.set()
        await self.release.wait()
        return f"sent to {to}"

    def tool(self) -> FunctionTool:
        return FunctionTool.from_defaults(async_fn=self.send_email, name="send_email")


class LogWatch(logging.Handler):
    """Sets `seen` when a record of `logger` mentions every one of `needles`."""

    def __init__(self, *needles: str) -> None:
        super().__init__(logging.DEBUG)
        self.needles = needles
        self.messages: list[str] = []
        self.seen = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if all(needle in message for needle in self.needles):
            self.messages.append(message)
            self._loop.call_soon_threadsafe(self.seen.set)


@contextlib.contextmanager
def watching(*needles: str) -> Iterator[LogWatch]:
    watch = LogWatch(*needles)
    logger = logging.getLogger("llama_agents")
    logger.addHandler(watch)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(previous)


async def first_of(*waits: asyncio.Future[object] | asyncio.Task[object]) -> None:
    """Wait until one of `waits` is done (a deadline makes the test fail, not hang)."""
    done, pending = await asyncio.wait(
        set(waits), timeout=DEADLINE, return_when=asyncio.FIRST_COMPLETED
    )
    for waiting in pending:
        waiting.cancel()
    assert done, "neither outcome happened in time"


async def two_queues(queue_factory: QueueFactory) -> tuple[BaseMessageQueue, BaseMessageQueue]:
    """(the service's queue, the caller's): two connections on RabbitMQ, one embedded queue."""
    service_queue = await queue_factory(max_attempts=3)
    caller_queue = await queue_factory(max_attempts=3)
    if type(service_queue).__name__ == "SimpleMessageQueue":
        caller_queue = service_queue  # the embedded queue lives in one object
    return service_queue, caller_queue


async def caller_goes_away(
    caller_queue: BaseMessageQueue,
    call: asyncio.Task[object],
    mailer: Mailer,
) -> str:
    """Once the work started, the caller restarts: its reply queue is gone. Returns its name."""
    await asyncio.wait_for(mailer.entered.wait(), DEADLINE)
    inbox = ReplyInbox.for_queue(caller_queue)
    await inbox.close()
    call.cancel()
    with pytest.raises(UnroutableMessageError):  # nobody can take a reply any more
        await caller_queue.publish(QueueMessage(type=inbox.reply_type))
    mailer.release.set()
    return inbox.reply_type


async def test_a_tool_reply_to_a_gone_caller_is_dropped_not_run_again(
    queue_factory: QueueFactory,
) -> None:
    service_queue, caller_queue = await two_queues(queue_factory)
    mailer = Mailer(hold=True)
    service = ToolService([mailer.tool()], service_queue, service_name="mailer")
    running = await service.launch_local()
    tool = await MetaServiceTool.from_tool_service(
        "send_email", caller_queue, tool_service=service, timeout=DEADLINE
    )
    with watching("send_email", "dropped") as dropped:
        call = asyncio.create_task(tool.acall(to="ceo@example.test"))
        reply_queue = await caller_goes_away(caller_queue, call, mailer)
        dead = asyncio.create_task(
            service_queue.fetch_dead_letters(wait_for=1, remove=False, timeout=DEADLINE)
        )
        await first_of(asyncio.ensure_future(dropped.seen.wait()), dead)
    assert mailer.sent == ["ceo@example.test"], "the tool ran again for a reply nobody takes"
    [line] = dropped.messages
    assert reply_queue in line and "dropped" in line
    running.cancel()


async def test_a_service_reply_to_a_gone_caller_is_dropped_not_run_again(
    queue_factory: QueueFactory,
) -> None:
    service_queue, caller_queue = await two_queues(queue_factory)
    mailer = Mailer(hold=True)
    service = ComponentService(mailer.send_email, service_queue, "Sends e-mails.", "mail_agent")
    running = await service.launch_local()
    as_tool = ServiceAsTool.from_service_definition(
        caller_queue, service.service_definition, timeout=DEADLINE
    )
    with watching("mail_agent", "dropped") as dropped:
        call = asyncio.create_task(as_tool.acall(input="board@example.test"))
        reply_queue = await caller_goes_away(caller_queue, call, mailer)
        dead = asyncio.create_task(
            service_queue.fetch_dead_letters(wait_for=1, remove=False, timeout=DEADLINE)
        )
        await first_of(asyncio.ensure_future(dropped.seen.wait()), dead)
    assert mailer.sent == ["board@example.test"], "the step ran again for a reply nobody takes"
    [line] = dropped.messages
    assert reply_queue in line
    running.cancel()


async def test_a_tool_call_whose_caller_gave_up_is_not_run(
    queue_factory: QueueFactory,
) -> None:
    service_queue, caller_queue = await two_queues(queue_factory)
    mailer = Mailer(hold=False)
    service = ToolService([mailer.tool()], service_queue, service_name="late_mailer")
    start = await service.register_to_message_queue()  # its queue exists; nobody consumes yet
    tool = await MetaServiceTool.from_tool_service(
        "send_email", caller_queue, tool_service=service, timeout=0.3
    )
    output = await tool.acall(to="customer@example.test")
    assert output.is_error and "did not answer" in str(output.content)
    with watching("send_email", "expired") as expired:
        consuming = asyncio.create_task(start())  # the service comes up late
        await first_of(
            asyncio.ensure_future(expired.seen.wait()),
            asyncio.ensure_future(mailer.entered.wait()),
        )
    assert mailer.sent == [], "a call its caller gave up on was run anyway"
    assert expired.messages
    consuming.cancel()


async def test_a_service_call_whose_caller_gave_up_is_not_run(
    queue_factory: QueueFactory,
) -> None:
    service_queue, caller_queue = await two_queues(queue_factory)
    mailer = Mailer(hold=False)
    service = ComponentService(mailer.send_email, service_queue, "Sends e-mails.", "late_agent")
    start = await service.register_to_message_queue()
    as_tool = ServiceAsTool.from_service_definition(
        caller_queue, service.service_definition, timeout=0.3
    )
    output = await as_tool.acall(input="customer@example.test")
    assert output.is_error
    with watching("late_agent", "expired") as expired:
        consuming = asyncio.create_task(start())
        await first_of(
            asyncio.ensure_future(expired.seen.wait()),
            asyncio.ensure_future(mailer.entered.wait()),
        )
    assert mailer.sent == [], "a step its caller gave up on was run anyway"
    assert expired.messages
    consuming.cancel()
