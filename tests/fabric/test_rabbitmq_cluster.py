"""Several broker addresses and failover, on a private three-node RabbitMQ cluster.

The address tests need no broker (the two that connect use the local node, and stop
nothing). The cluster tests start their own cluster once for the module
(tests/support/rabbit_cluster.py), stop nodes of it, and never touch the node on 5672.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from llama_agents import (
    AsyncLlamaAgentsClient,
    BrokerUnavailableError,
    ConfigurationError,
    PublishRejectedError,
    QueueMessage,
    RabbitMQMessageQueue,
    TaskStatus,
    UnroutableMessageError,
)
from llama_agents.message_queues.rabbitmq.addresses import parse_addresses, redact
from tests.support.helpers import Collector
from tests.support.processes import CLI, Proc, ProcessGroup, free_port, offline_env
from tests.support.rabbit_cluster import RabbitCluster, cluster_for_tests

#: Seconds a failover, or a stopped node's restart, may take.
FAILOVER_DEADLINE = 60.0

# -- addresses (no broker) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("amqp://u:p@h1:5672/", ["amqp://u:p@h1:5672/"]),
        (
            "amqp://u:p@h1:5672/,amqp://v:q@h2:5673/vh",
            ["amqp://u:p@h1:5672/", "amqp://v:q@h2:5673/vh"],
        ),
        (
            "amqp://u:p@h1:5672,h2:5673,h3:5674/vhost",
            ["amqp://u:p@h1:5672/vhost", "amqp://u:p@h2:5673/vhost", "amqp://u:p@h3:5674/vhost"],
        ),
        (
            " amqps://u:p@h1 , h2:5671/?heartbeat=5 ,amqp://u:p@h3/ ",
            ["amqps://u:p@h1/?heartbeat=5", "amqps://u:p@h2:5671/?heartbeat=5", "amqp://u:p@h3/"],
        ),
        ("amqp://u:p@h1/,amqp://u:p@h1/", ["amqp://u:p@h1/"]),
        ("amqp://u:p%2Cw@h1/", ["amqp://u:p,w@h1/"]),
    ],
)
def test_several_addresses_are_read_in_both_forms(setting: str, expected: list[str]) -> None:
    assert [str(url) for url in parse_addresses(setting)] == expected


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("garbage", "not a URL"),
        ("localhost:5672", "not a URL"),
        ("http://user:s3cret@h1/", "http:// is not AMQP"),
        ("amqp://user:s3cret@h1,,h2/", "an empty host"),
        ("amqp://user:s3cret@h1,", "an empty host"),
        ("amqp://user:s3cret@h1:99999/", "out of range"),
        ("amqp://user:s3cret@h1:port/", "port"),
        ("amqp://user:s3cret@:5672/", "no name"),
        ("amqp://user:s3cret@h1/,garbage", "must start another URL"),
        ("amqp://user:s3cret@h1/,amqp://user:s3cret@h2:x/", "in 'amqp://user:***@h2:x/'"),
    ],
)
def test_garbage_is_a_configuration_error_that_hides_the_password(
    setting: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="AMQP URL") as excinfo:
        RabbitMQMessageQueue(url=setting or " ")
    assert problem in str(excinfo.value)
    assert "s3cret" not in str(excinfo.value)
    if setting.strip():
        monkeypatch.setenv("LLAMA_AGENTS_AMQP_URL", setting)
        with pytest.raises(ConfigurationError, match="AMQP URL"):
            RabbitMQMessageQueue()


def test_several_addresses_come_from_the_environment_and_never_show_a_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setting = "amqp://u:s3cret@h1:5672,h2:5673/vh"
    monkeypatch.setenv("LLAMA_AGENTS_AMQP_URL", setting)
    queue = RabbitMQMessageQueue()
    assert queue.url == setting
    assert [str(url) for url in queue.addresses] == [
        "amqp://u:s3cret@h1:5672/vh",
        "amqp://u:s3cret@h2:5673/vh",
    ]
    assert "s3cret" not in repr(queue)
    assert redact(setting) == "amqp://u:***@h1:5672/vh,amqp://u:***@h2:5673/vh"
    assert queue.connected_url is None and queue.health()["broker_url"] is None


def test_quorum_group_size_is_validated_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="quorum_group_size"):
        RabbitMQMessageQueue(url="amqp://localhost/", quorum_group_size=0)
    assert RabbitMQMessageQueue(url="amqp://localhost/").quorum_group_size is None
    monkeypatch.setenv("LLAMA_AGENTS_QUORUM_GROUP_SIZE", "5")
    assert RabbitMQMessageQueue(url="amqp://localhost/").quorum_group_size == 5
    assert RabbitMQMessageQueue(url="amqp://localhost/", quorum_group_size=2).quorum_group_size == 2
    monkeypatch.setenv("LLAMA_AGENTS_QUORUM_GROUP_SIZE", "all")
    with pytest.raises(ConfigurationError, match="not an integer"):
        RabbitMQMessageQueue(url="amqp://localhost/")


async def test_a_dropped_connection_tries_the_next_node_at_once_and_backs_off_after_all() -> None:
    """What aio-pika's reconnect loop sees after each failed attempt (or drop): the address
    it tries next, and how long it waits first."""
    from aiormq.exceptions import AMQPConnectionError
    from yarl import URL

    from llama_agents.message_queues.rabbitmq.connection import BackoffRobustConnection

    nodes = [URL(f"amqp://u:p@node{i}:5672/") for i in range(3)]
    connection = BackoffRobustConnection(
        nodes, start=1, base_reconnect_interval=0.5, max_reconnect_interval=30
    )
    assert connection.url == nodes[1]
    tried, delays = [], []
    for _ in range(6):
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(AMQPConnectionError("connection refused"))
        await connection._on_connection_close(failed)
        tried.append(connection.url.host)
        delays.append(connection.reconnect_interval)
    assert tried == ["node2", "node0", "node1", "node2", "node0", "node1"], "round robin"
    assert delays[0] == delays[1] == 0.0, "the other nodes are tried at once"
    assert delays[3] == delays[4] == 0.0
    assert delays[2] >= 0.45 and delays[5] >= 0.45, "a backoff once every node failed"
    assert connection.connected_url is None
    await connection.close()


async def test_one_address_keeps_the_backoff_between_every_attempt() -> None:
    from yarl import URL

    from llama_agents.message_queues.rabbitmq.connection import BackoffRobustConnection

    connection = BackoffRobustConnection([URL("amqp://u:p@only:5672/")])
    for _ in range(3):
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(ConnectionRefusedError())
        await connection._on_connection_close(failed)
        assert connection.url.host == "only"
        assert connection.reconnect_interval >= 0.45
    await connection.close()


@pytest.mark.rabbitmq
async def test_the_first_address_that_answers_is_used(amqp_url: str, exchange_name: str) -> None:
    """A dead address before (or after) a live one: every process ends up connected."""
    dead = f"amqp://guest:s3cret@127.0.0.1:{free_port()}/"
    for setting in (f"{dead},{amqp_url}", f"{amqp_url},{dead}"):
        for _ in range(3):  # the first address tried is random: try it a few times
            queue = RabbitMQMessageQueue(url=setting, exchange_name=exchange_name)
            try:
                await queue.connect()
                assert queue.is_connected
                assert queue.connected_url == redact(amqp_url)
                assert queue.health()["broker_url"] == redact(amqp_url)
            finally:
                await queue.cleanup()
                await queue.close()
            assert queue.connected_url is None


async def test_no_address_answering_names_each_without_its_password() -> None:
    ports = [free_port(), free_port()]
    setting = ",".join(f"amqp://guest:s3cret@127.0.0.1:{port}/" for port in ports)
    queue = RabbitMQMessageQueue(url=setting, connect_timeout=5)
    with pytest.raises(BrokerUnavailableError, match="any of its nodes") as excinfo:
        await queue.connect()
    text = str(excinfo.value)
    assert all(f"127.0.0.1:{port}" in text for port in ports)
    assert "s3cret" not in text
    await queue.close()


# -- on the cluster ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    """Three clustered nodes, started once for this module, removed at its end."""
    with cluster_for_tests() as cluster:
        yield cluster


@pytest.fixture
async def cluster(
    rabbit_cluster: RabbitCluster, exchange_name: str
) -> AsyncIterator[RabbitCluster]:
    """The cluster; after the test every node runs again and the test's system is deleted."""
    try:
        yield rabbit_cluster
    finally:
        for name in sorted(rabbit_cluster.stopped):
            await rabbit_cluster.start_node(name)
        await rabbit_cluster.delete_system(exchange_name)


def cluster_queue(cluster: RabbitCluster, exchange: str, **kwargs: object) -> RabbitMQMessageQueue:
    return RabbitMQMessageQueue(
        url=cluster.url,
        exchange_name=exchange,
        reconnect_interval=0.2,
        max_reconnect_interval=1.0,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.rabbitmq
@pytest.mark.rabbitmq_cluster
async def test_quorum_queues_have_a_replica_on_every_node(
    cluster: RabbitCluster, exchange_name: str
) -> None:
    replicated = cluster_queue(cluster, exchange_name)
    single = cluster_queue(cluster, exchange_name, quorum_group_size=1)
    try:
        # Registering a consumer declares its queue and the dead-letter queue.
        await replicated.register_consumer(Collector().consumer("replicated"))
        assert await cluster.queue_members(f"{exchange_name}.replicated") == sorted(cluster.names)
        assert await cluster.queue_members(f"{exchange_name}.dead_letter") == sorted(cluster.names)
        await single.declare_queue("single")
        assert len(await cluster.queue_members(f"{exchange_name}.single")) == 1
        # The broker compares the size on every declaration: all processes must agree.
        with pytest.raises(ConfigurationError, match="x-quorum-initial-group-size"):
            await single.declare_queue("replicated")
    finally:
        for queue in (replicated, single):
            await queue.close()


@pytest.mark.rabbitmq
@pytest.mark.rabbitmq_cluster
async def test_a_consumer_fails_over_to_another_node_and_nothing_confirmed_is_lost(
    cluster: RabbitCluster, exchange_name: str
) -> None:
    """Publish numbered messages from four concurrent publishers while the node the queue is
    connected to goes away: the queue reconnects to another node, every publish is confirmed
    (the ones in flight, or nacked while the queue's leader moved, are sent again) and every
    number arrives at least once."""
    queue = cluster_queue(cluster, exchange_name, publish_timeout=30.0)
    collector = Collector()
    try:
        start = await queue.register_consumer(collector.consumer("numbered", prefetch=50))
        consuming = asyncio.create_task(start())
        assert queue.connected_url is not None
        first = cluster.node_at(queue.connected_url)

        numbers = itertools.count()
        confirmed: list[int] = []
        node_gone = asyncio.Event()
        confirmed_after = 0

        async def publish() -> None:
            nonlocal confirmed_after
            while confirmed_after < 200:
                n = next(numbers)
                await queue.publish(QueueMessage(type="numbered", data={"n": n}))
                confirmed.append(n)
                if node_gone.is_set():
                    confirmed_after += 1

        publishers = [asyncio.create_task(publish()) for _ in range(4)]
        await collector.wait_for(100)  # publishing and consuming on the first node
        await cluster.stop_node(first.name)
        node_gone.set()
        async with asyncio.timeout(FAILOVER_DEADLINE):
            await asyncio.gather(*publishers)
        assert queue.is_connected and queue.connected_url is not None
        assert cluster.node_at(queue.connected_url) is not first

        published = len(confirmed)
        assert sorted(confirmed) == list(range(published)), "no publish failed"
        await collector.wait_until(
            lambda: {m.data["n"] for m in collector.messages} >= set(range(published)),
            timeout=FAILOVER_DEADLINE,
        )
        assert not consuming.done()
        received = Counter(m.data["n"] for m in collector.messages)
        print(
            f"\npublished={published} during_failover_and_after={confirmed_after} "
            f"received={sum(received.values())} duplicates={sum(received.values()) - published}"
        )
        consuming.cancel()
    finally:
        await queue.close()


@pytest.mark.rabbitmq
@pytest.mark.rabbitmq_cluster
async def test_a_consumer_keeps_consuming_when_its_queue_leader_goes(
    cluster: RabbitCluster, exchange_name: str
) -> None:
    """The connection's node stays up; the node leading the queue goes: the queue elects a
    new leader and the same consumer goes on receiving (no reconnect involved)."""
    declaring = cluster_queue(cluster, exchange_name)
    try:
        await declaring.declare_queue("led")
    finally:
        await declaring.close()
    queue_name = f"{exchange_name}.led"
    leader = await cluster.queue_leader(queue_name)
    survivor = next(node for node in cluster.nodes if node.name != leader)
    queue = RabbitMQMessageQueue(
        url=survivor.url, exchange_name=exchange_name, reconnect_interval=0.2
    )
    publisher = cluster_queue(cluster, exchange_name, publish_timeout=30.0)
    collector = Collector()
    try:
        start = await queue.register_consumer(collector.consumer("led"))
        consuming = asyncio.create_task(start())
        await publisher.publish(QueueMessage(type="led", data={"n": -1}))
        await collector.wait_for(1)

        await cluster.stop_node(leader)
        assert await cluster.queue_leader(queue_name) != leader
        for n in range(20):
            await publisher.publish(QueueMessage(type="led", data={"n": n}))
        got = await collector.wait_for(21, timeout=FAILOVER_DEADLINE)
        assert {m.data["n"] for m in got} == set(range(-1, 20))
        assert queue.connected_url is not None
        assert cluster.node_at(queue.connected_url) is survivor, "it never reconnected"
        assert not consuming.done()
        consuming.cancel()
    finally:
        await queue.close()
        await publisher.close()


@pytest.mark.rabbitmq
@pytest.mark.rabbitmq_cluster
async def test_a_consumer_the_broker_cancels_consumes_again(
    cluster: RabbitCluster, exchange_name: str
) -> None:
    """The broker cancels a consumer (`basic.cancel`) when its queue goes away: the consumer
    declares the queue again, binds it and consumes from it, with no reconnect.

    A classic queue: RabbitMQ 3.10 may refuse to declare a quorum queue again right after
    deleting it (INTERNAL_ERROR while the old replicas stop); the cancel is the same."""
    import aio_pika

    queue = cluster_queue(cluster, exchange_name, queue_type="classic")
    collector = Collector()
    try:
        start = await queue.register_consumer(collector.consumer("cancelled"))
        consuming = asyncio.create_task(start())
        await queue.publish(QueueMessage(type="cancelled", data={"n": 0}))
        await collector.wait_for(1)
        connected_to = queue.connected_url

        async with await aio_pika.connect(cluster.urls[0]) as admin:
            channel = await admin.channel()
            await channel.queue_delete(f"{exchange_name}.cancelled")
        # Nothing announces the queue's return: publish, with backoff, until it takes it.
        async with asyncio.timeout(FAILOVER_DEADLINE):
            while True:
                try:
                    await queue.publish(QueueMessage(type="cancelled", data={"n": 1}))
                    break
                except UnroutableMessageError:
                    await asyncio.sleep(0.1)  # a backoff between tries, not a wait
        got = await collector.wait_for(2, timeout=FAILOVER_DEADLINE)
        assert [m.data["n"] for m in got] == [0, 1]
        assert queue.connected_url == connected_to, "the connection stayed up"
        consuming.cancel()
    finally:
        await queue.close()


@pytest.mark.rabbitmq
@pytest.mark.rabbitmq_cluster
async def test_a_nacked_publish_is_sent_again_until_the_broker_takes_it(
    cluster: RabbitCluster, exchange_name: str
) -> None:
    """A full queue (a policy caps it at one message; our queues reject publishes beyond
    the cap) nacks a publish, as a queue losing its leader does: the publish is retried
    until there is room, and only a queue that stays full ends it with PublishRejectedError."""
    queue = cluster_queue(cluster, exchange_name, publish_timeout=30.0)
    impatient = cluster_queue(cluster, exchange_name, publish_timeout=2.0)
    name = f"{exchange_name}.capped"
    policy = f"cap_{exchange_name}"
    await cluster.ctl(
        cluster.running()[0],
        "set_policy",
        "--apply-to",
        "queues",
        policy,
        f"^{name}$",
        '{"max-length": 1}',
    )
    try:
        await queue.declare_queue("capped")
        # A quorum queue checks its limit before taking a message: it takes one past it.
        for n in (1, 2):
            await queue.publish(QueueMessage(type="capped", data={"n": n}))
        with pytest.raises(PublishRejectedError, match="negative confirms"):
            await impatient.publish(QueueMessage(type="capped", data={"n": 0}))

        waiting = asyncio.create_task(queue.publish(QueueMessage(type="capped", data={"n": 3})))
        collector = Collector()
        start = await queue.register_consumer(collector.consumer("capped", prefetch=1))
        consuming = asyncio.create_task(start())
        got = await collector.wait_for(3, timeout=FAILOVER_DEADLINE)
        await asyncio.wait_for(waiting, FAILOVER_DEADLINE)
        assert [m.data["n"] for m in got] == [1, 2, 3]
        consuming.cancel()
    finally:
        await cluster.ctl(cluster.running()[0], "clear_policy", policy)
        await queue.close()
        await impatient.close()


# -- the fault ledger: every part its own process -------------------------------------------

TASKS = 100
FAULT_AT = 30
ORCHESTRATOR = "tests/support/mp_system.py:build_orchestrator"
ECHO = "tests/support/cluster_system.py:build_echo"
CONNECTED = "connected to RabbitMQ at "


class ClusterMesh:
    """A control plane, two `echo` replicas and a load generator, each its own process, all
    given the cluster's three addresses."""

    def __init__(self, cluster: RabbitCluster, exchange: str, tmp_path: Path) -> None:
        self.cluster = cluster
        self.port = free_port()
        self.ledger = tmp_path / "ledger.txt"
        self.env = offline_env(
            {
                "LLAMA_AGENTS_AMQP_URL": cluster.url,
                "LLAMA_AGENTS_EXCHANGE": exchange,
                "LLAMA_AGENTS_CONTROL_PLANE_URL": f"http://127.0.0.1:{self.port}",
                "LLAMA_AGENTS_STATE_PATH": str(tmp_path / "control_plane.sqlite3"),
                "LLAMA_AGENTS_TEST_LEDGER": str(self.ledger),
                "LLAMA_AGENTS_TEST_WORK_SECONDS": "0.5",
            }
        )
        self.group = ProcessGroup()

    async def up(self) -> None:
        await self.group.start(
            "control_plane",
            [
                CLI,
                "serve",
                "control-plane",
                "--orchestrator",
                ORCHESTRATOR,
                "--port",
                str(self.port),
            ],
            self.env,
            ready_marker="control plane ready",
        )
        await asyncio.gather(
            *(
                self.group.start(
                    name,
                    [CLI, "serve", "service", ECHO, "--port", str(free_port())],
                    {**self.env, "LLAMA_AGENTS_TEST_REPLICA": name},
                    ready_marker=" ready at",
                )
                for name in ("replica_1", "replica_2")
            )
        )

    async def generate(self) -> Proc:
        return await self.group.start(
            "load_generator",
            [sys.executable, "-m", "tests.support.cluster_system", str(TASKS)],
            self.env,
            ready_marker="load generator ready",
        )

    def connections(self) -> dict[str, list[str]]:
        """The broker nodes each process connected to, in order (from its log)."""
        return {
            name: [
                self.cluster.node_at(line.split(CONNECTED, 1)[1].split()[0]).name
                for line in proc.lines
                if CONNECTED in line
            ]
            for name, proc in self.group.procs.items()
        }

    async def first_reconnect(self, names: list[str], timeout: float) -> None:
        """Wait until one of the processes `names` logs a new connection."""
        # A quorum queue's first leader is the node of the connection that declared it (one
        # of these processes'): stopping the leader's node takes some process's node too.
        assert names, "no process is connected to the node about to stop"
        seen = {name: len(nodes) for name, nodes in self.connections().items()}

        async def reconnected(proc: Proc, name: str) -> None:
            async with proc.new_line:
                await proc.new_line.wait_for(
                    lambda: sum(CONNECTED in line for line in proc.lines) > seen[name]
                )

        waits = [asyncio.create_task(reconnected(self.group.procs[n], n)) for n in names]
        try:
            done, _ = await asyncio.wait(
                waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            assert done, f"none of {names} reconnected within {timeout}s"
        finally:
            for wait in waits:
                wait.cancel()

    def step_runs(self) -> Counter[str]:
        if not self.ledger.exists():
            return Counter()
        return Counter(line.split()[1] for line in self.ledger.read_text().splitlines() if line)


def results(proc: Proc) -> tuple[list[str], dict[str, list[str]]]:
    """What the load generator printed: the tasks it submitted, the result messages per task."""
    submitted = [line.split()[1] for line in proc.lines if line.startswith("submitted ")]
    delivered: dict[str, list[str]] = {}
    for line in proc.lines:
        if line.startswith("result "):
            _, task_id, message_id = line.split()
            delivered.setdefault(task_id, []).append(message_id)
    return submitted, delivered


async def wait_for_results(proc: Proc, count: int, timeout: float) -> None:
    async with asyncio.timeout(timeout), proc.new_line:
        await proc.new_line.wait_for(
            lambda: (
                len({line.split()[1] for line in proc.lines if line.startswith("result ")}) >= count
            )
        )


@pytest.mark.rabbitmq
@pytest.mark.rabbitmq_cluster
@pytest.mark.timeout(240)
async def test_fault_ledger_the_node_leading_the_service_queue_goes_mid_run(
    cluster: RabbitCluster, exchange_name: str, tmp_path: Path
) -> None:
    mesh = ClusterMesh(cluster, exchange_name, tmp_path)
    try:
        await mesh.up()
        generator = await mesh.generate()
        await wait_for_results(generator, FAULT_AT, timeout=FAILOVER_DEADLINE)
        leader = await cluster.queue_leader(f"{exchange_name}.echo")
        before = mesh.connections()
        on_stopped = sorted(name for name, nodes in before.items() if nodes[-1:] == [leader])
        stopping = asyncio.create_task(cluster.stop_node(leader))
        await mesh.first_reconnect(on_stopped, timeout=FAILOVER_DEADLINE)
        answered_at_failover = len(results(generator)[1])
        await stopping
        await generator.wait_for_line("load generator done", timeout=FAILOVER_DEADLINE)

        submitted, delivered = results(generator)
        async with AsyncLlamaAgentsClient(mesh.env["LLAMA_AGENTS_CONTROL_PLANE_URL"]) as client:
            tasks = {task.task_id: task for task in await client.list_tasks()}
        runs = mesh.step_runs()
        ledger = {
            "submitted": len(submitted),
            "completed": sum(tasks[t].status is TaskStatus.COMPLETED for t in submitted),
            "lost": len(set(submitted) - set(delivered)),
            "duplicate_results": sum(len(set(ids)) > 1 for ids in delivered.values()),
            "redelivered_results": sum(len(ids) - len(set(ids)) for ids in delivered.values()),
            "steps_rerun": sum(n - 1 for n in runs.values()),
        }
        after = mesh.connections()
        print("\n" + " ".join(f"{key}={value}" for key, value in ledger.items()))
        print(
            json.dumps(
                {
                    "stopped": leader,
                    "answered_at_failover": answered_at_failover,
                    "were_connected_to_it": on_stopped,
                    "nodes": after,
                }
            )
        )

        assert ledger["submitted"] == TASKS
        assert ledger["lost"] == 0
        assert ledger["duplicate_results"] == 0, "no task has two final results"
        assert ledger["completed"] == TASKS
        assert sum(runs.values()) >= TASKS
        assert answered_at_failover < TASKS, "processes failed over while tasks were running"
        for name, proc in mesh.group.procs.items():
            assert proc.process.returncode is None, f"{name} exited"
            assert after[name] and after[name][-1] != leader, f"{name} is on the stopped node"
        for name in on_stopped:
            assert len(after[name]) > len(before[name]), f"{name} did not reconnect"
    finally:
        await mesh.group.close()
