"""The compose file, run without Docker: every service it lists starts as an OS process with
its own command and environment (pointed at the local broker), and answers through the SDK.
So compose/docker-compose.yml cannot drift from the code."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llama_agents import AsyncLlamaAgentsClient
from tests.support import broker
from tests.support.processes import CLI, ROOT, ProcessGroup, free_port, offline_env

COMPOSE = ROOT / "compose" / "docker-compose.yml"
DOCKERFILE = ROOT / "compose" / "Dockerfile"
ENV_EXAMPLE = ROOT / "compose" / ".env.example"

SECRET = "The secret fact is: A baby llama is called a 'Cria'."


def all_compose_services() -> dict[str, dict[str, Any]]:
    """Every service of the file, those behind a profile (`--profile observability`) too."""
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def compose_services() -> dict[str, dict[str, Any]]:
    """The services `docker compose up` starts: those behind no profile."""
    return {name: s for name, s in all_compose_services().items() if not s.get("profiles")}


def dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    return {key: value for key, value in pairs}


#: What compose's variable syntax needs from compose/.env: ${VAR}, ${VAR:-default}, ${VAR:?error}.
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")

#: The variables compose must refuse to start without.
REQUIRED = {"LLAMA_AGENTS_API_KEY", "RABBITMQ_USER", "RABBITMQ_PASSWORD"}


class MissingVariableError(Exception):
    """What `docker compose` does with ${VAR:?message} when VAR is unset or empty."""


def interpolate(value: str, env: dict[str, str]) -> str:
    """Resolve compose's ${...} in `value` from `env`, as `docker compose` would."""

    def resolve(match: re.Match[str]) -> str:
        name, kind, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name, "")
        if current:
            return current
        if kind == "?":
            raise MissingVariableError(f"{name}: {arg}")
        return arg if kind == "-" else ""

    return _VARIABLE.sub(resolve, value)


def required_variables(value: str) -> set[str]:
    return {m.group(1) for m in _VARIABLE.finditer(value) if m.group(2) == "?"}


def start_order(services: dict[str, dict[str, Any]]) -> list[str]:
    """Services in an order that respects `depends_on` (the broker already runs)."""
    order: list[str] = []
    pending = {name for name in services if name != "rabbitmq"}
    while pending:
        ready = sorted(
            name
            for name in pending
            if all(
                dep in order or dep == "rabbitmq" for dep in services[name].get("depends_on", {})
            )
        )
        assert ready, f"depends_on has a cycle among {pending}"
        order.extend(ready)
        pending -= set(ready)
    return order


class LocalCompose:
    """What `docker compose up` would run, as local processes."""

    def __init__(self, amqp_url: str, exchange: str, data: Path) -> None:
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.data = data
        self.services = compose_services()
        self.control_plane_port = free_port()
        self.control_plane_url = f"http://127.0.0.1:{self.control_plane_port}"
        self.group = ProcessGroup()
        #: The environment each started service got (its local ports among it).
        self.envs: dict[str, dict[str, str]] = {}

    def env_for(self, name: str) -> dict[str, str]:
        # As compose does: ${...} come from compose/.env (here: a copy of the example).
        own = {
            key: interpolate(str(value), env_example())
            for key, value in self.services[name].get("environment", {}).items()
        }
        declared = {**dockerfile_env(), **env_example(), **own}
        env: dict[str, str] = {}
        for key, value in declared.items():
            value = str(value)
            if key == "LLAMA_AGENTS_AMQP_URL":
                value = self.amqp_url
            elif key == "LLAMA_AGENTS_CONTROL_PLANE_URL":
                value = self.control_plane_url
            elif key == "LLAMA_AGENTS_CONTROL_PLANE_PORT":
                value = str(self.control_plane_port)
            elif key.endswith("_PORT"):
                value = str(free_port())
            elif key.endswith("_HOST"):
                value = "127.0.0.1"
            elif key == "LLAMA_AGENTS_EXCHANGE":
                value = self.exchange
            value = value.replace("/data/", f"{self.data}/")
            env[key] = value
        env.setdefault("LLAMA_AGENTS_EXCHANGE", self.exchange)
        return offline_env(env)

    async def up(self) -> None:
        for name in start_order(self.services):
            command = [str(part) for part in self.services[name]["command"]]
            self.envs[name] = self.env_for(name)
            await self.group.start(name, [CLI, *command], self.envs[name], ready_marker=" ready")


@pytest.fixture
async def compose(amqp_url: str, exchange_name: str, tmp_path: Path) -> AsyncIterator[LocalCompose]:
    system = LocalCompose(amqp_url, exchange_name, tmp_path)
    try:
        await system.up()
        yield system
    finally:
        await system.group.close()
        await broker.delete_system(amqp_url, exchange_name)


def test_compose_file_describes_the_system() -> None:
    services = compose_services()
    assert set(services) == {
        "rabbitmq",
        "control-plane",
        "secret-fact-tools",
        "secret-fact-agent",
        "dumb-fact-agent",
        "human-results",
    }
    rabbitmq = services["rabbitmq"]
    assert rabbitmq["image"] == "rabbitmq:4-management"
    assert "healthcheck" in rabbitmq
    for name, service in services.items():
        if name == "rabbitmq":
            continue
        assert service["build"]["dockerfile"] == "compose/Dockerfile"
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert service["command"][0] == "serve"


def test_compose_requires_a_key_and_broker_credentials_and_binds_to_localhost() -> None:
    services = compose_services()
    assert "guest" not in json.dumps(services), "no default broker account"
    rabbitmq = services["rabbitmq"]["environment"]
    assert required_variables(rabbitmq["RABBITMQ_DEFAULT_USER"]) == {"RABBITMQ_USER"}
    assert required_variables(rabbitmq["RABBITMQ_DEFAULT_PASS"]) == {"RABBITMQ_PASSWORD"}
    for name, service in services.items():
        # Every published port listens on 127.0.0.1 unless LLAMA_AGENTS_BIND says otherwise.
        for port in service.get("ports", []):
            assert interpolate(port, {}).startswith("127.0.0.1:"), (name, port)
            assert interpolate(port, {"LLAMA_AGENTS_BIND": "0.0.0.0"}).startswith("0.0.0.0:")
        if name == "rabbitmq":
            continue
        env = service["environment"]
        assert required_variables(env["LLAMA_AGENTS_AMQP_URL"]) == {
            "RABBITMQ_USER",
            "RABBITMQ_PASSWORD",
        }, name
        assert required_variables(env["LLAMA_AGENTS_API_KEY"]) == {"LLAMA_AGENTS_API_KEY"}, name
        complete = {var: f"value-of-{var}" for var in REQUIRED}
        url = interpolate(env["LLAMA_AGENTS_AMQP_URL"], complete)
        assert url == ("amqp://value-of-RABBITMQ_USER:value-of-RABBITMQ_PASSWORD@rabbitmq:5672/"), (
            name
        )
        # Compose refuses to start when any of them is missing.
        for missing in REQUIRED:
            partial = {k: v for k, v in complete.items() if k != missing}
            with pytest.raises(MissingVariableError, match=missing):
                for value in env.values():
                    interpolate(str(value), partial)
    # The example .env names all three, so `cp .env.example .env` starts.
    assert set(env_example()) >= REQUIRED


@pytest.mark.rabbitmq
async def test_every_compose_service_runs_and_answers(
    compose: LocalCompose, amqp_url: str, exchange_name: str
) -> None:
    api_key = env_example()["LLAMA_AGENTS_API_KEY"]
    async with AsyncLlamaAgentsClient(compose.control_plane_url, api_key=api_key) as client:
        services = {s.service_name for s in await client.list_services()}
        assert services == {"secret_fact_tool_service", "secret_fact_agent", "dumb_fact_agent"}
        questions = ["What is the secret fact?"] * 3 + ["Tell me a dumb fact"] * 2
        task_ids = [await client.create_task(q) for q in questions]
        results = await asyncio.gather(
            *(client.wait_for_result(task_id, timeout=60) for task_id in task_ids)
        )
    answers = [result.result for result in results]
    assert answers[:3] == [SECRET] * 3
    assert all(result.error is None for result in results)

    # Stop everything as `docker compose down` would: SIGTERM, clean exits.
    codes = {name: await compose.group.stop(name) for name in list(compose.group.procs)}
    assert codes == dict.fromkeys(codes, 0), codes
    # Every result reached the human consumer's file or still waits in the human queue.
    results_file = compose.data / "results.jsonl"
    written = (
        [json.loads(line) for line in results_file.read_text().splitlines()]
        if (results_file.exists())
        else []
    )
    waiting = await broker.queue_depth(amqp_url, f"{exchange_name}.human")
    assert len(written) + waiting == len(task_ids)
    assert {row["task_id"] for row in written} <= set(task_ids)
