"""The compose profile `observability` (Prometheus, Grafana, Jaeger), checked without Docker.

Its files are read as the containers would read them: every Prometheus target is a service
of docker-compose.yml on the port it serves; the Grafana dashboard queries only metric names
the code exports, checked against the live `/metrics` of the compose services started as
local processes (the way test_compose.py runs them) and scraped as Prometheus would, with
the API key.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llama_agents import AsyncLlamaAgentsClient
from tests.end_to_end.test_compose import (
    COMPOSE,
    SECRET,
    LocalCompose,
    all_compose_services,
    compose_services,
    env_example,
    interpolate,
    required_variables,
)
from tests.support import broker

COMPOSE_DIR = COMPOSE.parent
OBSERVABILITY = COMPOSE_DIR / "observability"
PROMETHEUS_YML = OBSERVABILITY / "prometheus.yml"
DATASOURCES = OBSERVABILITY / "grafana" / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS = OBSERVABILITY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "llama-agents.json"
ENABLED_PLUGINS = COMPOSE_DIR / "rabbitmq" / "enabled_plugins"

PROFILE = "observability"
#: The port of the rabbitmq_prometheus plugin.
RABBITMQ_PROMETHEUS_PORT = 15692

#: What the rabbitmq_prometheus plugin exports per queue at /metrics/per-object (labels
#: `vhost`, `queue`), from its collector's `queue_coarse_metrics` and `queue_metrics` groups
#: (deps/rabbitmq_prometheus/src/collectors/prometheus_rabbitmq_core_metrics_collector.erl in
#: rabbitmq-server, 3.10 to 4.x). The local test broker does not run the plugin, and tests do
#: not enable plugins on a shared broker: when it does run, the broker's own endpoint is read.
RABBITMQ_PROMETHEUS_QUEUE_METRICS = frozenset(
    {
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_queue_messages",
        "rabbitmq_queue_consumers",
    }
)

#: PromQL words that look like metric names but are not.
_PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "inf", "nan"}
)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (what is left once strings, label
    matchers, ranges, groupings and function calls are set aside)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("(") or word.lower() in _PROMQL_KEYWORDS:
            continue  # a function or an aggregation, or a keyword
        names.add(word)
    return names


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in rows too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_expressions() -> list[str]:
    return [t["expr"] for p in panels(dashboard()) for t in p.get("targets", []) if "expr" in t]


def dashboard_metric_names() -> set[str]:
    return {name for expr in dashboard_expressions() for name in promql_metric_names(expr)}


def prometheus_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_YML.read_text())
    return config


def scrape_targets() -> list[tuple[dict[str, Any], str, int]]:
    """(job, host, port) of every target, from static and DNS service discovery."""
    targets: list[tuple[dict[str, Any], str, int]] = []
    for job in prometheus_config()["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.append((job, host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            assert dns.get("type", "SRV") == "A", "compose's DNS answers A records"
            targets.extend((job, name, int(dns["port"])) for name in dns["names"])
    return targets


def http_port(service: dict[str, Any]) -> int | None:
    """The port a llama-agents service serves its HTTP API (and /metrics) on."""
    env = service.get("environment", {})
    for key in ("LLAMA_AGENTS_CONTROL_PLANE_PORT", "LLAMA_AGENTS_SERVICE_PORT"):
        if key in env:
            return int(env[key])
    return None


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of the service's bind mounts (relative to compose/)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append(((COMPOSE_DIR / source).resolve(), target))
    return mounts


def exported_names(exposition: str) -> set[str]:
    """Every sample name an exposition can carry, from its families' types: a labelled
    family with no sample yet (no dead letter so far) still announces its type."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count", ""),
        "gauge": ("",),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_promql_metric_names_finds_selectors_only() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (service, le) (rate(a_seconds_bucket{status="x y",'
        'queue=~".+\\\\.dead_letter"}[$__rate_interval]))) / on (service) group_left b_total'
        " + max without (instance) (c)"
    )
    assert promql_metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}


def test_the_profile_adds_prometheus_grafana_and_jaeger_from_files_that_exist() -> None:
    everything = all_compose_services()
    profiled = {name for name, s in everything.items() if PROFILE in s.get("profiles", [])}
    assert profiled == {"prometheus", "grafana", "jaeger"}
    assert profiled.isdisjoint(compose_services()), "plain `docker compose up` stays as it was"
    declared_volumes = set(yaml.safe_load(COMPOSE.read_text())["volumes"])
    for name in profiled:
        service = everything[name]
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
        assert "build" not in service, name
        assert service["ports"], name
        for port in service["ports"]:
            assert interpolate(port, {}).startswith("127.0.0.1:"), (name, port)
            assert interpolate(port, {"LLAMA_AGENTS_BIND": "0.0.0.0"}).startswith("0.0.0.0:")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in declared_volumes, (name, volume)
        for host_path, _ in bind_mounts(service):
            assert host_path.exists(), (name, host_path)
        for dependency in service.get("depends_on", []):
            assert dependency in everything, (name, dependency)
    # RabbitMQ runs its Prometheus exporter (queue depths), from a file that names it.
    rabbitmq = everything["rabbitmq"]
    assert (ENABLED_PLUGINS.resolve(), "/etc/rabbitmq/enabled_plugins") in bind_mounts(rabbitmq)
    plugins = re.findall(r"\w+", ENABLED_PLUGINS.read_text())
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= set(plugins)


def test_every_service_sends_traces_to_jaeger_only_when_told() -> None:
    everything = all_compose_services()
    jaeger = everything["jaeger"]["environment"]
    assert jaeger["COLLECTOR_OTLP_ENABLED"] == "true"
    for name, service in compose_services().items():
        if name == "rabbitmq":
            continue
        env = service["environment"]
        assert env["OTEL_SERVICE_NAME"] == name
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        # Off by default (`none`); OTEL_TRACES_EXPORTER=otlp in compose/.env turns it on.
        assert interpolate(env["OTEL_TRACES_EXPORTER"], {}) == "none"
        assert interpolate(env["OTEL_TRACES_EXPORTER"], {"OTEL_TRACES_EXPORTER": "otlp"}) == "otlp"
        # OTLP/HTTP to the Jaeger of the profile (its receiver's port, 4318).
        assert interpolate(env["OTEL_EXPORTER_OTLP_ENDPOINT"], {}) == "http://jaeger:4318"


def test_prometheus_scrapes_every_service_of_the_compose_file_on_its_port() -> None:
    everything = all_compose_services()
    prometheus = everything["prometheus"]
    targets = scrape_targets()
    scraped: set[str] = set()
    for job, host, port in targets:
        assert host in everything, f"job {job['job_name']}: no compose service {host!r}"
        scraped.add(host)
        if host == "rabbitmq":
            assert port == RABBITMQ_PROMETHEUS_PORT
            assert job["metrics_path"] == "/metrics/per-object", "one series per queue"
            continue
        assert port == http_port(everything[host]), (host, port)
        assert job.get("metrics_path", "/metrics") == "/metrics"
        # With the API key, from the file the container writes from LLAMA_AGENTS_API_KEY.
        auth = job["authorization"]
        assert auth.get("type", "Bearer") == "Bearer"
        assert auth["credentials_file"] in " ".join(prometheus["entrypoint"])
    # Every service with an HTTP API is scraped (a new one needs a target), and the broker.
    served = {name for name, s in compose_services().items() if http_port(s) is not None}
    assert served == {
        "control-plane",
        "secret-fact-tools",
        "secret-fact-agent",
        "dumb-fact-agent",
        "human-results",  # a bare consumer: its queue's metrics only
    }
    assert scraped == served | {"rabbitmq"}
    # The key Prometheus sends is the system's: compose refuses to start without it.
    key = prometheus["environment"]["LLAMA_AGENTS_API_KEY"]
    assert required_variables(key) == {"LLAMA_AGENTS_API_KEY"}
    assert (PROMETHEUS_YML.resolve(), "/etc/prometheus/prometheus.yml") in bind_mounts(prometheus)
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    everything = all_compose_services()
    grafana = everything["grafana"]
    mounts = dict((target, source) for source, target in bind_mounts(grafana))
    assert mounts["/etc/grafana/provisioning"] == (OBSERVABILITY / "grafana/provisioning").resolve()
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    by_uid = {source["uid"]: source for source in sources}
    prometheus_url = httpx.URL(by_uid["prometheus"]["url"])
    assert prometheus_url.host in everything and prometheus_url.port == 9090
    jaeger_url = httpx.URL(by_uid["jaeger"]["url"])
    assert jaeger_url.host in everything and jaeger_url.port == 16686
    # The provider loads the directory the dashboards are mounted at.
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    dashboards_dir = provider["options"]["path"]
    assert mounts[dashboards_dir] == DASHBOARD.parent.resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"
    # Every query of the dashboard goes to the provisioned Prometheus.
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "prometheus", panel["title"]


def test_the_dashboard_shows_what_operators_asked_for() -> None:
    """Issue 12: tasks/s, failures, step latency by service, queue depth, dead letters,
    runs waiting for input."""
    expressions = dashboard_expressions()
    names = dashboard_metric_names()
    assert {
        "llama_agents_tasks_created_total",
        "llama_agents_tasks_finished_total",
        "llama_agents_step_duration_seconds_bucket",
        "rabbitmq_queue_messages_ready",
        "llama_agents_dead_letters_total",
        "llama_agents_runs_waiting_for_input",
    } <= names
    assert any(
        "llama_agents_step_duration_seconds_bucket" in e and "by (service, le)" in e
        for e in expressions
    ), "step latency by service"
    assert any('status="failed"' in e for e in expressions), "failures"
    assert any("dead_letter" in e and "rabbitmq_queue_messages_ready" in e for e in expressions)
    # Only our metrics and the broker's: a name from elsewhere would never have data.
    assert all(n.startswith(("llama_agents_", "rabbitmq_")) for n in names), names


async def rabbitmq_prometheus_running() -> bool:
    """Whether the local broker runs the rabbitmq_prometheus plugin (never enabled here)."""
    try:
        process = await asyncio.create_subprocess_exec(
            "rabbitmq-plugins",
            "list",
            "--enabled",
            "--minimal",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return False
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode == 0 and "rabbitmq_prometheus" in out.decode().split()


@pytest.fixture
async def system(amqp_url: str, exchange_name: str, tmp_path: Path) -> AsyncIterator[LocalCompose]:
    running = LocalCompose(amqp_url, exchange_name, tmp_path)
    try:
        await running.up()
        yield running
    finally:
        await running.group.close()
        await broker.delete_system(amqp_url, exchange_name)


@pytest.mark.rabbitmq
async def test_the_dashboard_queries_only_metrics_the_running_system_exports(
    system: LocalCompose,
) -> None:
    key = env_example()["LLAMA_AGENTS_API_KEY"]
    async with AsyncLlamaAgentsClient(system.control_plane_url, api_key=key) as client:
        task_ids = [
            await client.create_task("What is the secret fact?"),
            await client.create_task("Tell me a dumb fact"),
        ]
        results = [await client.wait_for_result(t, timeout=60) for t in task_ids]
    assert results[0].result == SECRET
    assert all(result.error is None for result in results)

    # Scrape every llama-agents target of prometheus.yml as Prometheus would (its port,
    # its path, the key as a bearer token), at the local process of that compose service.
    exported: set[str] = set()
    llama_targets = [(job, host) for job, host, _ in scrape_targets() if host != "rabbitmq"]
    assert llama_targets
    async with httpx.AsyncClient(timeout=30) as http:
        for job, host in llama_targets:
            port = http_port({"environment": system.envs[host]})
            url = f"http://127.0.0.1:{port}{job.get('metrics_path', '/metrics')}"
            assert (await http.get(url)).status_code == 401, f"{host}: /metrics needs the key"
            response = await http.get(url, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, (host, response.text)
            exported |= exported_names(response.text)
        # The run moved the counters the dashboard's first panels show.
        assert "llama_agents_tasks_created_total" in exported
        assert "llama_agents_step_duration_seconds_bucket" in exported

        wanted = dashboard_metric_names()
        ours = {name for name in wanted if name.startswith("llama_agents_")}
        assert not ours - exported, f"the dashboard queries unexported metrics: {ours - exported}"

        broker_names = wanted - ours
        if await rabbitmq_prometheus_running():
            url = f"http://127.0.0.1:{RABBITMQ_PROMETHEUS_PORT}/metrics/per-object"
            response = await http.get(url, headers={"Accept": "text/plain"})
            assert response.status_code == 200, response.text
            available = exported_names(response.text)
        else:
            available = set(RABBITMQ_PROMETHEUS_QUEUE_METRICS)
        assert broker_names and not broker_names - available, broker_names - available
