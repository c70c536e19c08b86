"""A private three-node RabbitMQ cluster for failover tests, from this machine's installation.

Each node is its own Erlang VM run as the `rabbitmq` user (sharing its Erlang cookie), with
its own name, AMQP and distribution ports (free ones), config file, data and log directories
under one temporary directory; nodes 2 and 3 join node 1. The machine's own node (5672) is
never addressed: every `rabbitmqctl` call here names one of this cluster's nodes.

Every command is a subprocess awaited on the running loop, and no state is tied to a loop,
so a cluster started in one loop (a fixture's) is driven from another (a test's).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import free_port

#: Set to 0 to skip the cluster tests.
ENABLE_ENV = "LLAMA_AGENTS_TEST_CLUSTER"
RABBITMQ_USER = "rabbitmq"
#: The real server script: Debian's /usr/sbin/rabbitmq-server wrapper sends a node's output
#: to /var/log/rabbitmq, where the machine's own node writes.
SERVER_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server",)
#: Seconds a node may take to boot, or to stop.
BOOT_TIMEOUT = 120.0
CTL_TIMEOUT = 60.0


class ClusterError(RuntimeError):
    """The cluster could not be started, or a command on one of its nodes failed."""


def prerequisites() -> str | None:
    """Why no cluster can be started here (None: it can)."""
    if os.environ.get(ENABLE_ENV, "").strip() == "0":
        return f"{ENABLE_ENV}=0 turns the RabbitMQ cluster tests off"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "starting RabbitMQ nodes as the rabbitmq user needs root"
    missing = [name for name in ("rabbitmq-server", "rabbitmqctl", "runuser") if not _which(name)]
    if missing:
        return f"no {', '.join(missing)} on this machine"
    try:
        pwd.getpwnam(RABBITMQ_USER)
    except KeyError:
        return f"no {RABBITMQ_USER!r} user on this machine"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def server_script() -> str:
    for path in SERVER_SCRIPTS:
        if os.access(path, os.X_OK):
            return path
    found = _which("rabbitmq-server")
    if found is None:
        raise ClusterError("rabbitmq-server not found")
    return found


@dataclass
class ClusterNode:
    """One node: its name, ports and directories."""

    name: str
    amqp_port: int
    dist_port: int
    base: Path
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def pid_file(self) -> Path:
        return self.base / "mnesia" / f"{self.name}.pid"

    def files(self) -> dict[str, str]:
        """The files a node reads, by name: written once when the cluster is made."""
        return {
            "rabbitmq.conf": (
                f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n"
                "loopback_users = none\n"
                # Small test nodes on a shared machine: never block publishers on disk space.
                "disk_free_limit.absolute = 1MB\n"
            ),
            "enabled_plugins": "[].\n",  # no management (or any) plugin
            "rabbitmq-env.conf": "",  # the machine's env file names the machine's node
        }

    def environment(self) -> dict[str, str]:
        home = pwd.getpwnam(RABBITMQ_USER).pw_dir  # holds the shared Erlang cookie
        return {
            "HOME": home,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }


@dataclass
class RabbitCluster:
    """Three clustered nodes; `close()` stops them and removes everything they wrote."""

    root: Path
    nodes: list[ClusterNode]
    stopped: set[str] = field(default_factory=set)
    #: Seconds the start took (all nodes up and clustered), and the last close.
    started_in: float = 0.0
    stopped_in: float = 0.0

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """All the nodes' addresses in one setting, as LLAMA_AGENTS_AMQP_URL takes them."""
        return ",".join(self.urls)

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def node(self, name: str) -> ClusterNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ClusterError(f"{name!r} is not a node of this cluster ({self.names})")

    def node_at(self, url: str) -> ClusterNode:
        """The node whose AMQP port `url` names."""
        for node in self.nodes:
            if f":{node.amqp_port}/" in url or url.endswith(f":{node.amqp_port}"):
                return node
        raise ClusterError(f"no node of this cluster listens at {url}")

    # -- making one ----------------------------------------------------------------------

    @classmethod
    async def start(cls, size: int = 3) -> RabbitCluster:
        """Start `size` nodes and cluster them; on any failure nothing is left behind."""
        began = time.monotonic()
        token = secrets.token_hex(3)
        root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"la_cluster_{token}_"))
        nodes = [
            ClusterNode(
                name=f"la{token}_c{i}@localhost",
                amqp_port=free_port(),
                dist_port=free_port(),
                base=root / f"c{i}",
            )
            for i in range(1, size + 1)
        ]
        cluster = cls(root, nodes)
        try:
            await asyncio.to_thread(cluster._write_files)
            await asyncio.gather(*(cluster._boot(node) for node in nodes))
            first = nodes[0].name
            for node in nodes[1:]:  # one at a time: joins change the cluster's schema
                await cluster.ctl(node.name, "stop_app")
                await cluster.ctl(node.name, "join_cluster", first)
                await cluster.ctl(node.name, "start_app")  # returns once it runs
            await cluster.ctl(first, "await_online_nodes", str(size))
        except BaseException:
            await cluster.close()
            raise
        cluster.started_in = time.monotonic() - began
        return cluster

    def _write_files(self) -> None:
        account = pwd.getpwnam(RABBITMQ_USER)
        self.root.chmod(0o755)
        for node in self.nodes:
            for sub in ("mnesia", "log"):
                (node.base / sub).mkdir(parents=True)
            for name, text in node.files().items():
                (node.base / name).write_text(text)
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)

    async def _boot(self, node: ClusterNode) -> None:
        """Start the node's VM detached, as the rabbitmq user; return once it is running."""
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(node.pid_file.unlink)  # `wait` must not read a stale one
        env = [f"{key}={value}" for key, value in node.environment().items()]
        argv = ["runuser", "-u", RABBITMQ_USER, "--", "env", *env, server_script(), "-detached"]
        await _run(argv, timeout=CTL_TIMEOUT, cwd=node.base)
        # `wait` returns once the node's app is running (its pid file names the VM).
        await self.ctl(node.name, "wait", str(node.pid_file), timeout=BOOT_TIMEOUT)
        node.pid = int((await asyncio.to_thread(node.pid_file.read_text)).strip())

    # -- driving it ----------------------------------------------------------------------

    async def ctl(self, name: str, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """`rabbitmqctl -n <name> <args>` on one of this cluster's nodes (never another)."""
        self.node(name)
        return await _run(["rabbitmqctl", "-q", "-n", name, *args], timeout=timeout)

    async def stop_node(self, name: str) -> None:
        """Stop the node's VM (as a crash of its machine would, but cleanly); returns once its
        process has exited."""
        await self.ctl(name, "shutdown", timeout=BOOT_TIMEOUT)
        self.stopped.add(name)

    async def start_node(self, name: str) -> None:
        """Start a stopped node again: it rejoins the cluster from its data directory."""
        await self._boot(self.node(name))
        self.stopped.discard(name)

    def running(self) -> list[str]:
        return [name for name in self.names if name not in self.stopped]

    async def queue_leader(self, queue: str) -> str:
        """The node leading quorum queue `queue`, as a running node sees it."""
        out = await self.ctl(
            self.running()[0], "list_queues", "name", "leader", "members", "--formatter", "json"
        )
        for row in json.loads(out or "[]"):
            if row["name"] == queue:
                return str(row["leader"])
        raise ClusterError(f"no queue {queue!r} on the cluster")

    async def queue_members(self, queue: str) -> list[str]:
        """The nodes holding a replica of quorum queue `queue`."""
        out = await self.ctl(
            self.running()[0], "list_queues", "name", "members", "--formatter", "json"
        )
        for row in json.loads(out or "[]"):
            if row["name"] == queue:
                return sorted(str(member) for member in row["members"])
        raise ClusterError(f"no queue {queue!r} on the cluster")

    async def delete_system(self, exchange: str) -> None:
        """Delete every queue of `exchange`'s system, and the exchange, from the cluster."""
        import aio_pika

        out = await self.ctl(self.running()[0], "list_queues", "name", "--formatter", "json")
        names = [row["name"] for row in json.loads(out or "[]")]
        live = self.node(self.running()[0])
        async with await aio_pika.connect(live.url) as connection:
            channel = await connection.channel()
            for name in names:
                if name.startswith(f"{exchange}."):
                    await channel.queue_delete(name)
            await channel.exchange_delete(exchange)

    # -- taking it down ------------------------------------------------------------------

    async def close(self) -> float:
        """Stop every node (killing one that will not stop) and remove the directory.

        Returns how long it took; never raises for a node that was already down.
        """
        began = time.monotonic()
        await asyncio.gather(*(self._halt(node) for node in self.nodes))
        await asyncio.to_thread(shutil.rmtree, self.root, True)
        self.stopped_in = time.monotonic() - began
        return self.stopped_in

    async def _halt(self, node: ClusterNode) -> None:
        if node.name not in self.stopped:
            with contextlib.suppress(ClusterError, TimeoutError):
                await self.ctl(node.name, "shutdown", timeout=CTL_TIMEOUT)
        self.stopped.add(node.name)
        pid = node.pid
        if pid is None:
            with contextlib.suppress(OSError, ValueError):
                pid = int((await asyncio.to_thread(node.pid_file.read_text)).strip())
        if pid is not None:
            await _kill(pid, node.name)


async def _run(argv: list[str], timeout: float, cwd: Path | None = None) -> str:
    """Run `argv` to its end; its output, or `ClusterError` with what it printed."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ClusterError(f"{' '.join(argv[:6])} ... did not finish in {timeout}s") from None
    if process.returncode != 0:
        shown = " ".join(arg for arg in argv if not arg.startswith("RABBITMQ_"))
        raise ClusterError(f"{shown}: exit {process.returncode}: {(err or out).decode().strip()}")
    return out.decode()


async def _kill(pid: int, name: str) -> None:
    """SIGKILL a leftover node VM (ours: its recorded pid, still running node `name`) and
    await its exit."""
    try:
        pidfd = os.pidfd_open(pid)
        environ = await asyncio.to_thread(Path(f"/proc/{pid}/environ").read_bytes)
    except (ProcessLookupError, FileNotFoundError):
        return  # already gone
    if f"RABBITMQ_NODENAME={name}".encode() not in environ.split(b"\0"):
        os.close(pidfd)
        return  # the pid now belongs to another process
    try:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        exited = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(pidfd, exited.set)  # a pidfd turns readable when the process ends
        try:
            async with asyncio.timeout(CTL_TIMEOUT):
                await exited.wait()
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@contextlib.contextmanager
def cluster_for_tests() -> Iterator[RabbitCluster]:
    """A started cluster for a fixture, stopped and removed afterwards whatever happened.

    Skips (with the reason) where no cluster can be started here, or when
    `LLAMA_AGENTS_TEST_CLUSTER=0`; a cluster that fails to start skips locally and fails in
    CI (`CI=true`). Started and stopped in a loop of its own (in a worker thread), as a
    fixture may be set up from inside a running loop.
    """
    reason = prerequisites()
    if reason is not None:
        pytest.skip(reason)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            cluster = pool.submit(asyncio.run, RabbitCluster.start()).result()
        except Exception as exc:
            message = f"the local RabbitMQ cluster did not start: {exc}"
            if in_ci():
                pytest.fail(f"{message} (CI=true: the cluster tests must run)", pytrace=False)
            pytest.skip(message)
    print(f"\nRabbitMQ cluster {cluster.names} started in {cluster.started_in:.1f}s")
    try:
        yield cluster
    finally:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            took = pool.submit(asyncio.run, cluster.close()).result()
        print(f"\nRabbitMQ cluster stopped and removed in {took:.1f}s")
