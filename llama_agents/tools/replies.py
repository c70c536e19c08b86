"""A process's inbox for answers: one transient reply queue, futures by correlation id.

Every caller in a process that waits for answers over the fabric (remote tools, services
used as tools) shares one reply queue per message queue object. An answer is matched to its
question by correlation id; an answer nobody waits for any more (it timed out) is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref

from llama_agents.message_consumers.callable import CallableMessageConsumer
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import QueueMessage
from llama_agents.messages.expiry import set_expiry

logger = logging.getLogger("llama_agents.tools")

_inboxes: weakref.WeakKeyDictionary[BaseMessageQueue, ReplyInbox] = weakref.WeakKeyDictionary()


class ReplyInbox:
    """Waits for replies on a transient queue named `reply.<random id>`."""

    def __init__(self, message_queue: BaseMessageQueue) -> None:
        self.message_queue = message_queue
        self.reply_type = f"reply.{uuid.uuid4().hex}"
        self._waiting: dict[str, asyncio.Future[QueueMessage]] = {}
        self._consumer: CallableMessageConsumer | None = None
        self._consuming: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def for_queue(cls, message_queue: BaseMessageQueue) -> ReplyInbox:
        """The inbox shared by every caller using `message_queue` in this process."""
        inbox = _inboxes.get(message_queue)
        if inbox is None:
            inbox = cls(message_queue)
            _inboxes[message_queue] = inbox
        return inbox

    async def open(self) -> None:
        """Declare the reply queue and start consuming it (once)."""
        async with self._lock:
            if self._consuming is not None and not self._consuming.done():
                return
            self._consumer = CallableMessageConsumer(
                handler=self._receive, message_type=self.reply_type, transient=True
            )
            start = await self.message_queue.register_consumer(self._consumer)
            self._consuming = asyncio.create_task(start(), name=f"inbox-{self.reply_type}")

    def expect(self, correlation_id: str) -> asyncio.Future[QueueMessage]:
        """A future resolved by the reply carrying `correlation_id`."""
        future: asyncio.Future[QueueMessage] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        return future

    async def ask(self, message: QueueMessage, timeout: float) -> QueueMessage:
        """Publish `message` with this inbox as its reply address; return the reply.

        The message's `correlation_id` (set if missing) matches the reply to it, and it
        expires with `timeout`: a service that takes it after that does not run it. Raises
        `TimeoutError` after `timeout` seconds.
        """
        await self.open()
        message.reply_to = self.reply_type
        if message.correlation_id is None:
            message.correlation_id = uuid.uuid4().hex
        set_expiry(message, timeout)
        answer = self.expect(message.correlation_id)
        try:
            await self.message_queue.publish(message)
            async with asyncio.timeout(timeout):
                return await answer
        finally:
            self.forget(message.correlation_id)

    def forget(self, correlation_id: str) -> None:
        """Stop waiting for a reply (after a timeout)."""
        self._waiting.pop(correlation_id, None)

    async def _receive(self, message: QueueMessage) -> None:
        future = self._waiting.pop(message.correlation_id or "", None)
        if future is None or future.done():
            logger.info("reply %s arrived after its caller stopped waiting", message.correlation_id)
            return
        future.set_result(message)

    async def close(self) -> None:
        """Stop consuming; the transient reply queue goes away with it."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await self.message_queue.deregister_consumer(consumer)
            except Exception:
                logger.debug("reply consumer already gone", exc_info=True)
        if self._consuming is not None:
            self._consuming.cancel()
            self._consuming = None
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
