"""Benchmark the message fabric: llama-agents on RabbitMQ against raw aio-pika.

Three cases run one after the other in the same process, on the same broker, with 1 KiB
message bodies:

* ``raw_aio_pika``: aio-pika by hand with the durability the library uses (durable topic
  exchange, durable quorum queue, persistent messages, publisher confirms with
  ``on_return_raises`` and ``mandatory`` publishes, a consumer on its own channel with
  ``prefetch`` that acknowledges each message after decoding its JSON body).
* ``llama_agents_rabbitmq``: the same traffic through ``RabbitMQMessageQueue`` and a
  ``CallableMessageConsumer``.
* ``llama_agents_simple``: the same through the in-process ``SimpleMessageQueue``.

Each case is warmed up, then measured twice:

* throughput: ``--messages`` messages published with at most ``--window`` publishes in
  flight, timed from the first publish until the consumer has received the last one
  (``msgs_per_s``; ``seconds`` is that phase's duration);
* round-trip latency: ``--roundtrips`` messages one at a time (publish, wait until the
  consumer got it, repeat), each timed from the start of the publish call to the entry of
  the consumer's handler (``rtt_p50_ms``, ``rtt_p99_ms``).

With ``--repeat K`` every case runs K times (the cases interleaved, round by round) and each
figure reported is the median over the K runs. Each case prints one JSON line on stdout, then
a ``summary`` line compares the library on RabbitMQ with raw aio-pika; progress goes to
stderr. A case that fails (a broker that cannot be reached, say) prints a line with
``"error"`` instead of figures. The script reports figures only: it never passes or fails.

Run it from the project root::

    .venv/bin/python benchmarks/fabric.py
    .venv/bin/python benchmarks/fabric.py --repeat 3 --messages 10000

The broker is ``--url``, by default ``LLAMA_AGENTS_AMQP_URL`` or the local broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from _common import Output, add_url_option, broker_error, description, percentile, positive
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from llama_agents import (
    BaseMessageQueue,
    CallableMessageConsumer,
    QueueMessage,
    RabbitMQMessageQueue,
    SimpleMessageQueue,
)

BENCH = "fabric"
BODY_BYTES = 1024
MESSAGE_TYPE = "bench"
WARMUP_MESSAGES = 200
CONNECT_TIMEOUT = 5.0
#: Seconds a phase waits for its messages before the case is reported as an error.
RECEIVE_TIMEOUT = 60.0
TARGETS: dict[str, float] = {"rate_vs_raw_min": 0.6, "p50_added_ms_max": 0.5}

RAW = "raw_aio_pika"
LLAMA_RABBITMQ = "llama_agents_rabbitmq"
LLAMA_SIMPLE = "llama_agents_simple"
CASES = (RAW, LLAMA_RABBITMQ, LLAMA_SIMPLE)

OUT = Output(BENCH)
log, emit = OUT.log, OUT.emit


def make_payload() -> str:
    """A string that makes a message body of about `BODY_BYTES` bytes on the wire."""
    # The raw body is `{"payload": "...", "sent": <float>}`: 1 KiB minus the JSON around it.
    overhead = len(json.dumps({"payload": "", "sent": time.perf_counter()}))
    return "x" * (BODY_BYTES - overhead)


@dataclass
class Settings:
    url: str
    messages: int
    roundtrips: int
    prefetch: int
    window: int
    repeat: int


@dataclass
class RunResult:
    msgs_per_s: float
    seconds: float
    rtt_p50_ms: float
    rtt_p99_ms: float


class Receiver:
    """What the consumer's handler reports to: a count to reach, or one message to wait for.

    The handler calls `received(sent)` with the publish start time carried in the message;
    a waiting benchmark phase is woken through a future, never by polling.
    """

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.all_received: asyncio.Future[float] | None = None
        self.next_message: asyncio.Future[float] | None = None

    def expect(self, count: int) -> asyncio.Future[float]:
        """A future resolved (with the arrival time) once `count` more messages arrived."""
        self.count = 0
        self.target = count
        self.all_received = asyncio.get_running_loop().create_future()
        return self.all_received

    def expect_one(self) -> asyncio.Future[float]:
        """A future resolved with the latency of the next message, in seconds."""
        self.next_message = asyncio.get_running_loop().create_future()
        return self.next_message

    def received(self, sent: float) -> None:
        now = time.perf_counter()
        waiter = self.next_message
        if waiter is not None and not waiter.done():
            waiter.set_result(now - sent)
        self.count += 1
        done = self.all_received
        if done is not None and self.count >= self.target and not done.done():
            done.set_result(now)


PublishFn = Callable[[int], Awaitable[None]]


@dataclass
class Fabric:
    """One case set up: `publish(i)` sends message i; the consumer reports to `receiver`."""

    publish: PublishFn
    receiver: Receiver
    close: Callable[[], Awaitable[None]]
    extra: dict[str, Any] = field(default_factory=dict)


# -- the cases ------------------------------------------------------------------------


async def open_raw(settings: Settings, payload: str) -> Fabric:
    """Raw aio-pika with the library's durability settings, on its own exchange and queue."""
    suffix = uuid.uuid4().hex[:8]
    exchange_name = f"bench_raw_{suffix}"
    queue_name = f"{exchange_name}.{MESSAGE_TYPE}"
    receiver = Receiver()
    connection: AbstractRobustConnection = await aio_pika.connect_robust(
        settings.url, timeout=CONNECT_TIMEOUT
    )
    try:
        publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await publish_channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=settings.prefetch)
        queue = await consume_channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange_name, routing_key=MESSAGE_TYPE)
    except BaseException:
        await connection.close()
        raise

    async def on_message(incoming: AbstractIncomingMessage) -> None:
        data = json.loads(incoming.body)
        receiver.received(data["sent"])
        await incoming.ack()

    consumer_tag = await queue.consume(on_message, no_ack=False)

    async def publish(_: int) -> None:
        sent = time.perf_counter()
        body = json.dumps({"payload": payload, "sent": sent}).encode()
        message = aio_pika.Message(
            body=body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, MESSAGE_TYPE, mandatory=True)

    async def close() -> None:
        try:
            with contextlib.suppress(Exception):
                await queue.cancel(consumer_tag)
            cleanup = await connection.channel()
            await cleanup.queue_delete(queue_name)
            await cleanup.exchange_delete(exchange_name)
            await cleanup.close()
        finally:
            await connection.close()

    return Fabric(publish=publish, receiver=receiver, close=close)


async def open_llama(queue: BaseMessageQueue, payload: str, *, cleanup: bool) -> Fabric:
    """The library's queue `queue` with one `CallableMessageConsumer`, started."""
    receiver = Receiver()

    async def handler(message: QueueMessage) -> None:
        receiver.received(message.data["sent"])

    consumer = CallableMessageConsumer(handler=handler, message_type=MESSAGE_TYPE)
    try:
        start = await queue.register_consumer(consumer)
    except BaseException:
        with contextlib.suppress(Exception):
            await queue.close()
        raise
    consuming = asyncio.create_task(start(), name=f"{BENCH}-consume")

    async def publish(_: int) -> None:
        message = QueueMessage(type=MESSAGE_TYPE, data={"payload": payload, "sent": 0.0})
        message.data["sent"] = time.perf_counter()
        await queue.publish(message)

    async def close() -> None:
        try:
            await queue.deregister_consumer(consumer)
            if cleanup:
                await queue.cleanup()
        finally:
            await queue.close()
            consuming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await consuming

    return Fabric(publish=publish, receiver=receiver, close=close)


async def open_case(case: str, settings: Settings, payload: str) -> Fabric:
    if case == RAW:
        return await open_raw(settings, payload)
    if case == LLAMA_RABBITMQ:
        queue = RabbitMQMessageQueue(
            url=settings.url,
            exchange_name=f"bench_llama_{uuid.uuid4().hex[:8]}",
            prefetch=settings.prefetch,
            connect_timeout=CONNECT_TIMEOUT,
        )
        return await open_llama(queue, payload, cleanup=True)
    if case == LLAMA_SIMPLE:
        return await open_llama(
            SimpleMessageQueue(prefetch=settings.prefetch), payload, cleanup=False
        )
    raise ValueError(f"unknown case {case!r}")


# -- the measurements -----------------------------------------------------------------


async def throughput(fabric: Fabric, count: int, window: int) -> float:
    """Seconds from the first publish until the consumer received all `count` messages."""
    next_index = 0
    all_received = fabric.receiver.expect(count)

    async def publisher() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            try:
                await fabric.publish(index)
            except Exception as exc:
                # Wake the waiting phase: this message will never arrive.
                if not all_received.done():
                    all_received.set_exception(exc)
                raise

    started = time.perf_counter()
    publishers = [asyncio.create_task(publisher()) for _ in range(min(window, count))]
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT + count / 100):
            finished = await all_received
            # Every confirm is back too (they usually are before the last delivery).
            await asyncio.gather(*publishers)
    finally:
        for task in publishers:
            task.cancel()
        await asyncio.gather(*publishers, return_exceptions=True)
    return finished - started


async def round_trips(fabric: Fabric, count: int) -> list[float]:
    """Latencies (seconds) of `count` messages sent one at a time."""
    latencies: list[float] = []
    fabric.receiver.expect(count)
    for index in range(count):
        arrived = fabric.receiver.expect_one()
        await fabric.publish(index)
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            latencies.append(await arrived)
    fabric.receiver.next_message = None
    return latencies


async def run_case(case: str, settings: Settings, payload: str) -> RunResult:
    fabric = await open_case(case, settings, payload)
    try:
        await throughput(fabric, WARMUP_MESSAGES, settings.window)
        await round_trips(fabric, min(WARMUP_MESSAGES, 50))
        seconds = await throughput(fabric, settings.messages, settings.window)
        latencies = await round_trips(fabric, settings.roundtrips)
    finally:
        await fabric.close()
    return RunResult(
        msgs_per_s=settings.messages / seconds,
        seconds=seconds,
        rtt_p50_ms=percentile(latencies, 0.50) * 1000.0,
        rtt_p99_ms=percentile(latencies, 0.99) * 1000.0,
    )


def median_result(runs: list[RunResult]) -> RunResult:
    return RunResult(
        msgs_per_s=statistics.median(run.msgs_per_s for run in runs),
        seconds=statistics.median(run.seconds for run in runs),
        rtt_p50_ms=statistics.median(run.rtt_p50_ms for run in runs),
        rtt_p99_ms=statistics.median(run.rtt_p99_ms for run in runs),
    )


async def main_async(settings: Settings) -> None:
    payload = make_payload()
    runs: dict[str, list[RunResult]] = {case: [] for case in CASES}
    errors: dict[str, str] = {}
    unreachable = await broker_error(settings.url, CONNECT_TIMEOUT)
    if unreachable is not None:
        log(unreachable)
        errors[RAW] = errors[LLAMA_RABBITMQ] = unreachable

    for round_number in range(1, settings.repeat + 1):
        for case in CASES:
            if case in errors:
                continue
            log(f"round {round_number}/{settings.repeat}: {case}")
            try:
                result = await run_case(case, settings, payload)
            except Exception as exc:
                errors[case] = f"{type(exc).__name__}: {exc}"
                log(f"{case} failed: {errors[case]}")
                continue
            runs[case].append(result)
            log(
                f"  {result.msgs_per_s:.0f} msgs/s, rtt p50 {result.rtt_p50_ms:.3f} ms, "
                f"p99 {result.rtt_p99_ms:.3f} ms"
            )

    base: dict[str, Any] = {
        "messages": settings.messages,
        "body_bytes": BODY_BYTES,
        "prefetch": settings.prefetch,
        "window": settings.window,
    }
    medians: dict[str, RunResult] = {}
    for case in CASES:
        record: dict[str, Any] = {"bench": BENCH, "case": case, **base}
        if case in errors:
            record["error"] = errors[case]
        else:
            medians[case] = median = median_result(runs[case])
            record.update(
                msgs_per_s=round(median.msgs_per_s, 1),
                rtt_p50_ms=round(median.rtt_p50_ms, 4),
                rtt_p99_ms=round(median.rtt_p99_ms, 4),
                seconds=round(median.seconds, 4),
                repeat=settings.repeat,
            )
        emit(record)

    raw, llama = medians.get(RAW), medians.get(LLAMA_RABBITMQ)
    emit(
        {
            "bench": BENCH,
            "case": "summary",
            "rate_vs_raw": round(llama.msgs_per_s / raw.msgs_per_s, 4) if raw and llama else None,
            "p50_added_ms": round(llama.rtt_p50_ms - raw.rtt_p50_ms, 4) if raw and llama else None,
            "targets": TARGETS,
        }
    )


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=description(__doc__))
    add_url_option(parser)
    parser.add_argument("--messages", type=positive, default=5000, help="throughput messages")
    parser.add_argument("--roundtrips", type=positive, default=500, help="latency messages")
    parser.add_argument("--prefetch", type=positive, default=100, help="consumer prefetch")
    parser.add_argument("--window", type=positive, default=200, help="publishes in flight")
    parser.add_argument("--repeat", type=positive, default=1, help="runs per case (median)")
    args = parser.parse_args(argv)
    return Settings(
        url=args.url,
        messages=args.messages,
        roundtrips=args.roundtrips,
        prefetch=args.prefetch,
        window=args.window,
        repeat=args.repeat,
    )


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    started = time.perf_counter()
    asyncio.run(main_async(settings))
    log(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
