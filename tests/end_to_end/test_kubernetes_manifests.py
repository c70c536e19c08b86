"""deploy/kubernetes, checked against the project itself, without a cluster.

Every YAML document is read as Kubernetes would read it, and what would break a deploy is
checked against the code rather than against a copy of it: each Deployment's container is
built the way `llama-agents serve` builds it (its arguments parsed by the CLI, under the
environment the manifests give it, the Secret's values taken from secret.example.yaml), so
the port it listens on, its health route, its queue and its startup wait come from the
objects the pod would run. Each check returns the problems it finds, and
`test_a_broken_manifest_is_caught` breaks the manifests one way at a time and expects the
check that guards against that to say so.

Nothing here needs a cluster, kubectl, a broker or a database: the objects are built, never
started.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import copy
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx
import pytest
import yaml
from click.testing import CliRunner
from fastapi import FastAPI

from llama_agents._settings import ENV_PREFIX
from llama_agents.control_plane.server import ControlPlaneServer
from llama_agents.errors import ConfigurationError
from llama_agents.launchers.loader import load_target, resolve
from llama_agents.launchers.process import startup_timeout
from llama_agents.llms import default_llm
from llama_agents.message_consumers.base import BaseMessageQueueConsumer
from llama_agents.message_queues.rabbitmq import RabbitMQMessageQueue
from llama_agents.message_queues.rabbitmq.topology import queue_name
from llama_agents.orchestrators import AgentOrchestrator
from llama_agents.orchestrators.base import BaseOrchestrator
from llama_agents.services.agent import AgentService
from llama_agents.services.base import BaseService
from llama_agents.services.tool import ToolService
from llama_agents.tools import MetaServiceTool
from tests.end_to_end.test_compose import DOCKERFILE, all_compose_services
from tests.support.processes import ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
EXAMPLE_SECRET = MANIFESTS / "secret.example.yaml"
PYPROJECT = ROOT / "pyproject.toml"
PACKAGE = ROOT / "llama_agents"

#: Manifests kustomization.yaml leaves out on purpose: placeholders that must never overwrite
#: the real Secret, and a PodMonitor that needs the Prometheus Operator's CRDs.
NOT_APPLIED = {"secret.example.yaml", "podmonitor.yaml"}

#: Environment variables of the test process that would leak into the objects built here.
FOREIGN_ENV_PREFIXES = (ENV_PREFIX, "OPENAI_", "OTEL_")

ENV_NAME = re.compile(re.escape(ENV_PREFIX) + r"[A-Z0-9_]+")
ENV_READERS = {"env_str", "env_int", "env_float"}
ANY_ADDRESS = {"0.0.0.0", "::"}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")

Doc = dict[str, Any]


# -- reading the manifests ----------------------------------------------------------------


@dataclass
class Manifests:
    """Every document under deploy/kubernetes (file name, body), and the kustomization."""

    docs: list[tuple[str, Doc]]
    kustomization: Doc

    def of_kind(self, kind: str) -> list[Doc]:
        return [doc for _, doc in self.docs if doc.get("kind") == kind]

    def named(self, kind: str, name: str) -> Doc | None:
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    def one(self, kind: str, name: str) -> Doc:
        found = self.named(kind, name)
        assert found is not None, f"no {kind} {name}"
        return found

    def deployment(self, name: str) -> Doc:
        return self.one("Deployment", name)

    def container(self, deployment: str) -> Doc:
        return only_container(self.deployment(deployment))

    def namespace(self) -> str:
        (namespace,) = self.of_kind("Namespace")
        name: str = namespace["metadata"]["name"]
        return name

    def example_secret(self) -> Doc:
        secrets = [doc for file, doc in self.docs if file == EXAMPLE_SECRET.name]
        assert len(secrets) == 1 and secrets[0]["kind"] == "Secret", "secret.example.yaml"
        return secrets[0]


@cache
def _read() -> tuple[tuple[tuple[str, Doc], ...], Doc]:
    docs: list[tuple[str, Doc]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path == KUSTOMIZATION:
            continue
        docs.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return tuple(docs), yaml.safe_load(KUSTOMIZATION.read_text())


def manifests() -> Manifests:
    """A fresh copy: the mutation cases change theirs."""
    docs, kustomization = copy.deepcopy(_read())
    return Manifests(list(docs), kustomization)


def only_container(deployment: Doc) -> Doc:
    containers: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container expected"
    return containers[0]


def pod_labels(deployment: Doc) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"].get("labels", {})
    return labels


def selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def secret_values(secret: Doc) -> dict[str, str]:
    """The Secret's keys and values (`data` is base64, as Kubernetes stores it)."""
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return values


def container_env(m: Manifests, container: Doc) -> dict[str, str]:
    """The environment the container gets: its ConfigMaps, then its own `env`, with secret
    references resolved from the example Secret (an optional key it lacks stays unset)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = m.named("ConfigMap", source["configMapRef"]["name"])
            env.update({k: str(v) for k, v in ((config or {}).get("data") or {}).items()})
    secret = secret_values(m.example_secret())
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None and ref["key"] in secret:
            env[entry["name"]] = secret[ref["key"]]
    return env


def port_number(container: Doc, port: int | str) -> int | None:
    """A port given by number or by the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    found = named.get(port)
    return int(found) if found is not None else None


# -- what the code reads and runs ---------------------------------------------------------


@cache
def env_names_the_code_reads() -> frozenset[str]:
    """`LLAMA_AGENTS_*` names in the package: `env_str("X")`-style reads (the prefix added)
    and every string literal that is a whole variable name (click's `envvar=`, os.environ)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and ENV_NAME.fullmatch(node.value)
            ):
                names.add(node.value)
            elif isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                first = node.args[0]
                if called in ENV_READERS and isinstance(first, ast.Constant):
                    names.add(ENV_PREFIX + str(first.value))
    return frozenset(names)


def cli() -> click.Group:
    """The `llama-agents` command, found as the installed script finds it (pyproject)."""
    script = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]["llama-agents"]
    module, _, attr = script.partition(":")
    group = load_target(f"{module}:{attr}")
    assert isinstance(group, click.Group)
    return group


def dockerfile_entrypoint() -> list[str]:
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            entrypoint: list[str] = json.loads(line.removeprefix("ENTRYPOINT "))
            return entrypoint
    return []


def dockerfile_copied() -> set[str]:
    """The top-level paths compose/Dockerfile copies into its WORKDIR."""
    copied: set[str] = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            words = [w for w in line.split()[1:] if not w.startswith("--")]
            copied.update(Path(w).parts[0] for w in words[:-1])
    return copied


def parse_command(args: list[str]) -> tuple[str, dict[str, Any]]:
    """The leaf command `args` names (`serve service`), and its parameters as click parses
    them now, environment variables included."""
    command: click.Command = cli()
    ctx = click.Context(command, info_name="llama-agents")
    rest, path = list(args), list[str]()
    while isinstance(command, click.Group):
        assert rest, f"{args}: no command under {' '.join(path) or 'llama-agents'}"
        name, rest = rest[0], rest[1:]
        found = command.get_command(ctx, name)
        assert found is not None, f"{args}: no command {name!r}"
        path.append(name)
        command = found
        ctx = click.Context(command, info_name=name, parent=ctx)
    leaf = command.make_context(path[-1], rest, parent=ctx.parent)
    return " ".join(path), leaf.params


@dataclass
class Process:
    """What one container runs, built as `llama-agents serve` builds it in that container."""

    target: ControlPlaneServer | BaseService
    host: str
    port: int | None
    startup_timeout: float
    app: FastAPI | None


@contextmanager
def container_environment(env: dict[str, str]) -> Iterator[None]:
    """The container's environment and working directory (the image's WORKDIR, which holds
    services/), with none of the test process's own settings."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(FOREIGN_ENV_PREFIXES):
                patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        patch.chdir(ROOT)
        yield


def run_container(m: Manifests, deployment: str) -> Process:
    """Build what the Deployment's container serves, as `llama-agents serve` does (see
    llama_agents/console/serve.py and launchers/process.py), without starting it."""
    container = m.container(deployment)
    with container_environment(container_env(m, container)):
        command, params = parse_command(container.get("args", []))
        timeout = startup_timeout()
        if command == "serve control-plane":
            spec = params["orchestrator_target"]
            orchestrator = (
                resolve(load_target(spec), BaseOrchestrator)
                if spec
                else AgentOrchestrator(llm=default_llm())
            )
            plane = ControlPlaneServer(
                RabbitMQMessageQueue(), orchestrator, host=params["host"], port=params["port"]
            )
            return Process(plane, plane.host, plane.port, timeout, plane.app)
        if command == "serve service":
            built = resolve(load_target(params["target"]), BaseService, BaseMessageQueueConsumer)
            if not isinstance(built, BaseService):
                raise AssertionError(f"{deployment}: a bare consumer has no /health to probe")
            if params["host"] is not None:
                built.host = params["host"]
            if params["port"] is not None:
                built.port = params["port"]
            return Process(built, built.host, built.port, timeout, built.app)
    raise AssertionError(f"{deployment}: {command!r} is not a `llama-agents serve` command")


def deployments_running(m: Manifests, command: str) -> list[str]:
    """Names of the Deployments whose container runs `llama-agents <command> ...`."""
    words = command.split()
    return [
        d["metadata"]["name"]
        for d in m.of_kind("Deployment")
        if only_container(d).get("args", [])[: len(words)] == words
    ]


def services(m: Manifests) -> Iterator[tuple[str, BaseService]]:
    for name in deployments_running(m, "serve service"):
        target = run_container(m, name).target
        assert isinstance(target, BaseService)
        yield name, target


# -- the checks: each returns what is wrong -----------------------------------------------


def check_identity(m: Manifests) -> list[str]:
    """Every document is a named object of the system's namespace, named once."""
    problems, seen = [], set()
    namespace = m.namespace()
    for file, doc in m.docs:
        meta = doc.get("metadata") or {}
        where = f"{file}: {doc.get('kind')} {meta.get('name')}"
        problems += [f"{where}: no {key}" for key in ("apiVersion", "kind") if not doc.get(key)]
        if not meta.get("name"):
            problems.append(f"{where}: no metadata.name")
        if doc.get("kind") != "Namespace" and meta.get("namespace") != namespace:
            problems.append(f"{where}: namespace {meta.get('namespace')!r}, not {namespace!r}")
        key = (doc.get("apiVersion"), doc.get("kind"), meta.get("name"))
        if key in seen:
            problems.append(f"{where}: defined twice")
        seen.add(key)
    return problems


def check_kustomization(m: Manifests) -> list[str]:
    """`kubectl apply -k` applies every manifest but the optional ones, and rewrites every
    container's image to the one built from compose/Dockerfile."""
    listed = list(m.kustomization.get("resources", []))
    problems = [
        f"{r} is listed but does not exist" for r in listed if not (MANIFESTS / r).is_file()
    ]
    files = {path.name for path in MANIFESTS.glob("*.yaml")} - {KUSTOMIZATION.name}
    problems += [
        f"{f} is not in kustomization.yaml" for f in sorted(files - set(listed) - NOT_APPLIED)
    ]
    problems += [f"{f} must not be applied by kustomize" for f in sorted(set(listed) & NOT_APPLIED)]
    images = {image["name"] for image in m.kustomization.get("images", [])}
    for deployment in m.of_kind("Deployment"):
        image = only_container(deployment)["image"].rsplit(":", 1)[0]
        if image not in images:
            problems.append(
                f"{deployment['metadata']['name']}: image {image!r} is not set by kustomization"
            )
    return problems


def check_deployment_selectors(m: Manifests) -> list[str]:
    """Each Deployment's selector matches its own pods, and no other Deployment's."""
    problems = []
    deployments = m.of_kind("Deployment")
    for d in deployments:
        selector = d["spec"].get("selector", {}).get("matchLabels")
        for other in deployments:
            matches = selects(selector, pod_labels(other))
            if other is d and not matches:
                problems.append(f"{d['metadata']['name']}: selector does not match its pods")
            elif other is not d and matches:
                problems.append(
                    f"{d['metadata']['name']}: selector matches {other['metadata']['name']}'s pods"
                )
    return problems


def check_service_routes(m: Manifests) -> list[str]:
    """Each Service selects pods a Deployment creates and targets ports they expose; an
    ExternalName Service (PostgreSQL, RabbitMQ) names a host and selects nothing."""
    problems = []
    for service in m.of_kind("Service"):
        name, spec = service["metadata"]["name"], service["spec"]
        if spec.get("type") == "ExternalName":
            if spec.get("selector") or not spec.get("externalName"):
                problems.append(f"Service {name}: an ExternalName needs a host and no selector")
            continue
        pods = [d for d in m.of_kind("Deployment") if selects(spec.get("selector"), pod_labels(d))]
        if not pods:
            problems.append(f"Service {name}: selects no Deployment's pods")
        for port in spec.get("ports", []):
            for d in pods:
                container = only_container(d)
                exposed = {p["containerPort"] for p in container.get("ports", [])}
                target = port_number(container, port.get("targetPort", port["port"]))
                if target not in exposed:
                    problems.append(
                        f"Service {name}: port {port['port']} targets {port.get('targetPort')!r},"
                        f" which {d['metadata']['name']}'s container does not expose"
                    )
    return problems


def check_disruption_budgets(m: Manifests) -> list[str]:
    """Each PodDisruptionBudget covers a Deployment's pods; the control plane has one."""
    problems, covered = [], set()
    for pdb in m.of_kind("PodDisruptionBudget"):
        selector = pdb["spec"].get("selector", {}).get("matchLabels")
        hits = [
            d["metadata"]["name"]
            for d in m.of_kind("Deployment")
            if selects(selector, pod_labels(d))
        ]
        if not hits:
            problems.append(f"PodDisruptionBudget {pdb['metadata']['name']} selects no pods")
        covered.update(hits)
    problems += [
        f"{name}: no PodDisruptionBudget"
        for name in deployments_running(m, "serve control-plane")
        if name not in covered
    ]
    return problems


def check_env_names(m: Manifests) -> list[str]:
    """Every LLAMA_AGENTS_* variable the manifests set is one the code reads."""
    known = env_names_the_code_reads()
    assert {"LLAMA_AGENTS_AMQP_URL", "LLAMA_AGENTS_SERVICE_PORT"} <= known, "the scan found nothing"
    used: dict[str, str] = {}
    for config in m.of_kind("ConfigMap"):
        used.update(
            {k: f"ConfigMap {config['metadata']['name']}" for k in config.get("data") or {}}
        )
    for d in m.of_kind("Deployment"):
        for entry in only_container(d).get("env", []):
            used[entry["name"]] = f"Deployment {d['metadata']['name']}"
    return [
        f"{where}: {name} is read nowhere in llama_agents/"
        for name, where in sorted(used.items())
        if name.startswith(ENV_PREFIX) and name not in known
    ]


def check_references(m: Manifests) -> list[str]:
    """Every Secret key and ConfigMap referenced exists (in the example Secret, which
    documents every key the real one may hold)."""
    secret = m.example_secret()
    secret_name, keys = secret["metadata"]["name"], set(secret_values(secret))
    refs: list[tuple[str, str, str]] = []  # (who, secret, key)
    problems = []
    for d in m.of_kind("Deployment"):
        who, container = f"Deployment {d['metadata']['name']}", only_container(d)
        for source in container.get("envFrom", []):
            if "configMapRef" in source and not m.named(
                "ConfigMap", source["configMapRef"]["name"]
            ):
                problems.append(f"{who}: no ConfigMap {source['configMapRef']['name']}")
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                refs.append((f"{who} {entry['name']}", ref["name"], ref["key"]))
    for auth in m.of_kind("TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef", []):
            refs.append(
                (f"TriggerAuthentication {auth['metadata']['name']}", ref["name"], ref["key"])
            )
    for monitor in m.of_kind("PodMonitor"):
        for endpoint in monitor["spec"].get("podMetricsEndpoints", []):
            ref = endpoint.get("authorization", {}).get("credentials")
            if ref is not None:
                refs.append((f"PodMonitor {monitor['metadata']['name']}", ref["name"], ref["key"]))
    for who, name, key in refs:
        if name != secret_name or key not in keys:
            problems.append(f"{who}: Secret {name} key {key!r} is not in secret.example.yaml")
    return problems


def check_commands(m: Manifests) -> list[str]:
    """Each container runs the compose file's command for the same service, through the
    image's ENTRYPOINT (the `llama-agents` script), and the CLI accepts it."""
    problems = []
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    if dockerfile_entrypoint() != ["llama-agents"] or "llama-agents" not in scripts:
        problems.append("compose/Dockerfile's ENTRYPOINT is not the llama-agents script")
    compose, runner = all_compose_services(), CliRunner()
    for d in m.of_kind("Deployment"):
        name, container = d["metadata"]["name"], only_container(d)
        args = container.get("args", [])
        if "command" in container:
            problems.append(f"{name}: `command` replaces the image's ENTRYPOINT")
        if compose.get(name, {}).get("command") != args:
            problems.append(f"{name}: args {args} are not compose's command for {name}")
        with container_environment(container_env(m, container)):
            result = runner.invoke(cli(), [*args, "--help"], prog_name="llama-agents")
        if result.exit_code != 0:
            problems.append(f"{name}: `llama-agents {' '.join(args)}`: {result.output.strip()}")
        for word in args:
            path = word.rpartition(":")[0]
            if path.endswith(".py"):
                if not (ROOT / path).is_file():
                    problems.append(f"{name}: {path} does not exist")
                elif Path(path).parts[0] not in dockerfile_copied():
                    problems.append(f"{name}: compose/Dockerfile does not copy {path}")
    return problems


def check_listening(m: Manifests) -> list[str]:
    """Each container listens where its probes, its ports and its scrape annotations say:
    on every interface, on the port the code takes from its environment; its probes ask
    the health route (it answers without the API key, 503 while no broker is connected)."""
    problems = []
    for d in m.of_kind("Deployment"):
        name, container = d["metadata"]["name"], only_container(d)
        process = run_container(m, name)
        if process.host not in ANY_ADDRESS:
            problems.append(f"{name}: listens on {process.host}, unreachable from outside the pod")
        if process.port is None:
            problems.append(f"{name}: no port set, it would listen on a random one")
        if process.port not in {p["containerPort"] for p in container.get("ports", [])}:
            problems.append(f"{name}: listens on {process.port}, not a containerPort")
        assert process.app is not None
        for kind in PROBES:
            get = container.get(kind, {}).get("httpGet")
            if get is None:
                problems.append(f"{name}: no HTTP {kind}")
                continue
            if port_number(container, get["port"]) != process.port:
                problems.append(f"{name}: {kind} on port {get['port']}, not {process.port}")
            status = unauthenticated_status(process.app, get["path"])
            if status != 503:
                problems.append(
                    f"{name}: {kind} {get['path']} answers {status} unauthenticated before "
                    "the broker connects: not the health route (503)"
                )
        annotations = d["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            routes = {getattr(route, "path", None) for route in process.app.routes}
            if str(process.port) != annotations.get("prometheus.io/port"):
                problems.append(f"{name}: scraped on {annotations.get('prometheus.io/port')}")
            if annotations.get("prometheus.io/path") not in routes:
                problems.append(f"{name}: {annotations.get('prometheus.io/path')} is no route")
    return problems


def unauthenticated_status(app: FastAPI, path: str) -> int:
    """The status `app` answers a GET of `path` with, no API key sent (as kubelet asks)."""

    async def get() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pod") as client:
            return (await client.get(path)).status_code

    return asyncio.run(get())


def check_startup_budget(m: Manifests) -> list[str]:
    """The probe that governs startup waits longer than the process waits for RabbitMQ (and
    the control plane) before it serves: kubelet must not kill a pod that is still waiting."""
    problems = []
    for d in m.of_kind("Deployment"):
        name, container = d["metadata"]["name"], only_container(d)
        probe = container.get("startupProbe") or container.get("livenessProbe") or {}
        budget = probe.get("initialDelaySeconds", 0) + probe.get("periodSeconds", 10) * probe.get(
            "failureThreshold", 3
        )
        waits = run_container(m, name).startup_timeout
        if budget <= waits:
            problems.append(f"{name}: probes give up after {budget} s, the process waits {waits} s")
    return problems


def check_scaling(m: Manifests) -> list[str]:
    """Each ScaledObject scales a Deployment (which leaves its replica count to it) on the
    depth of the queue that Deployment's service consumes, counted with the steps in flight."""
    problems = []
    auths = {a["metadata"]["name"]: a for a in m.of_kind("TriggerAuthentication")}
    for scaled in m.of_kind("ScaledObject"):
        who, spec = f"ScaledObject {scaled['metadata']['name']}", scaled["spec"]
        if scaled.get("apiVersion") != "keda.sh/v1alpha1":
            problems.append(f"{who}: apiVersion {scaled.get('apiVersion')}")
        ref = spec.get("scaleTargetRef", {})
        target = m.named("Deployment", ref.get("name", ""))
        if ref.get("kind", "Deployment") != "Deployment" or target is None:
            problems.append(f"{who}: scales {ref}, which is no Deployment here")
            continue
        if "replicas" in target["spec"]:
            problems.append(f"{who}: {ref['name']} sets replicas, which every apply would reset")
        if not 1 <= spec.get("minReplicaCount", 0) < spec.get("maxReplicaCount", 100):
            problems.append(f"{who}: needs 1 <= minReplicaCount < maxReplicaCount")
        service = run_container(m, ref["name"]).target
        assert isinstance(service, BaseService)
        queue = service.message_queue
        assert isinstance(queue, RabbitMQMessageQueue)
        expected = queue_name(queue.exchange_name, service.service_name)
        triggers = [t for t in spec.get("triggers", []) if t.get("type") == "rabbitmq"]
        if not triggers:
            problems.append(f"{who}: no rabbitmq trigger")
        for trigger in triggers:
            meta = trigger.get("metadata", {})
            if meta.get("queueName") != expected:
                problems.append(
                    f"{who}: queueName {meta.get('queueName')!r}, the service consumes {expected!r}"
                )
            if meta.get("mode") != "QueueLength" or meta.get("protocol") != "http":
                problems.append(f"{who}: QueueLength over http counts the steps replicas hold too")
            if float(meta.get("value", 0)) != service.max_concurrent_tasks:
                problems.append(
                    f"{who}: value {meta.get('value')}, but a replica holds "
                    f"{service.max_concurrent_tasks} steps at once"
                )
            auth = auths.get(trigger.get("authenticationRef", {}).get("name", ""))
            params = {
                r.get("parameter") for r in (auth or {}).get("spec", {}).get("secretTargetRef", [])
            }
            if "host" not in params:
                problems.append(f"{who}: no TriggerAuthentication giving the scaler its host")
    return problems


def check_control_plane(m: Manifests) -> list[str]:
    """Several control-plane replicas, replaced one at a time, over one shared PostgreSQL
    store (SQLite is a file per pod: replicas would each see their own tasks)."""
    names = deployments_running(m, "serve control-plane")
    problems = [] if names else ["no Deployment runs the control plane"]
    for name in names:
        d = m.deployment(name)
        if d["spec"].get("replicas", 1) < 2:
            problems.append(f"{name}: {d['spec'].get('replicas', 1)} replica(s), not active-active")
        rolling = d["spec"].get("strategy", {}).get("rollingUpdate", {})
        if rolling.get("maxUnavailable") != 0:
            problems.append(f"{name}: a rolling update may take a replica down first")
        state = container_env(m, only_container(d)).get(f"{ENV_PREFIX}STATE_URL", "")
        if urlsplit(state).scheme not in {"postgresql", "postgres"}:
            problems.append(f"{name}: LLAMA_AGENTS_STATE_URL {state!r} is not PostgreSQL")
    return problems


def check_tool_services(m: Manifests) -> list[str]:
    """Every remote tool a deployed agent calls is served by a deployed tool service."""
    built = dict(services(m))
    served = {s.service_name: set(s.tools) for s in built.values() if isinstance(s, ToolService)}
    problems = []
    for name, service in built.items():
        if not isinstance(service, AgentService):
            continue
        for tool in getattr(service.agent, "tools", None) or []:
            if isinstance(tool, MetaServiceTool):
                wanted = tool.metadata.get_name()
                if wanted not in served.get(tool.tool_service_name, set()):
                    problems.append(
                        f"{name}: calls {wanted} of {tool.tool_service_name}, deployed nowhere"
                    )
    return problems


def check_addresses(m: Manifests) -> list[str]:
    """A service registers with the control plane through a Service that reaches it, and
    registers an address (its public host) that reaches itself."""
    problems = []
    planes = deployments_running(m, "serve control-plane")
    plane_port = run_container(m, planes[0]).port if planes else None
    for name in deployments_running(m, "serve service"):
        container = only_container(m.deployment(name))
        env = container_env(m, container)
        url = urlsplit(env.get(f"{ENV_PREFIX}CONTROL_PLANE_URL", ""))
        if not reaches(m, url.hostname, url.port or 80, planes, plane_port):
            problems.append(
                f"{name}: LLAMA_AGENTS_CONTROL_PLANE_URL does not reach the control plane"
            )
        public = env.get(f"{ENV_PREFIX}SERVICE_PUBLIC_HOST")
        port = run_container(m, name).port
        if not reaches(m, public, port, [name], port):
            problems.append(f"{name}: SERVICE_PUBLIC_HOST {public}:{port} does not reach it")
    return problems


def reaches(
    m: Manifests, host: str | None, port: int | None, deployments: list[str], pod_port: int | None
) -> bool:
    """Whether `host:port` is a Service of the namespace that sends to `pod_port` of one of
    `deployments`' pods."""
    labels = (host or "").split(".")
    if len(labels) > 1 and labels[1] != m.namespace():
        return False
    service = m.named("Service", labels[0])
    if service is None:
        return False
    for d in deployments:
        deployment = m.deployment(d)
        if not selects(service["spec"].get("selector"), pod_labels(deployment)):
            continue
        for entry in service["spec"].get("ports", []):
            target = port_number(only_container(deployment), entry.get("targetPort", entry["port"]))
            if entry["port"] == port and target == pod_port:
                return True
    return False


CHECKS: list[Callable[[Manifests], list[str]]] = [
    check_identity,
    check_kustomization,
    check_deployment_selectors,
    check_service_routes,
    check_disruption_budgets,
    check_env_names,
    check_references,
    check_commands,
    check_listening,
    check_startup_budget,
    check_scaling,
    check_control_plane,
    check_tool_services,
    check_addresses,
]


def problems_of(check: Callable[[Manifests], list[str]], m: Manifests) -> list[str]:
    """What `check` finds; a manifest so broken that the check cannot go on is one problem."""
    try:
        return check(m)
    except (AssertionError, ConfigurationError) as exc:
        return [f"{type(exc).__name__}: {exc}"]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_the_manifests_pass(check: Callable[[Manifests], list[str]]) -> None:
    assert problems_of(check, manifests()) == []


# -- each check catches what it guards against --------------------------------------------


def env_entry(container: Doc, name: str) -> Doc:
    return next(entry for entry in container["env"] if entry["name"] == name)


def drop_env(container: Doc, name: str) -> None:
    container["env"] = [entry for entry in container["env"] if entry["name"] != name]


def scaled_trigger(m: Manifests) -> Doc:
    (scaled,) = m.of_kind("ScaledObject")
    trigger: Doc = scaled["spec"]["triggers"][0]
    return trigger


CP, AGENT, TOOLS = "control-plane", "secret-fact-agent", "secret-fact-tools"


@dataclass
class Breakage:
    """One way to break the manifests, the check that must notice, and what it must say."""

    breaks: Callable[[Manifests], None]
    check: Callable[[Manifests], list[str]]
    says: str


BREAKAGES: list[Breakage] = []


def breakage(
    check: Callable[[Manifests], list[str]], says: str
) -> Callable[[Callable[[Manifests], None]], Callable[[Manifests], None]]:
    def register(breaks: Callable[[Manifests], None]) -> Callable[[Manifests], None]:
        BREAKAGES.append(Breakage(breaks, check, says))
        return breaks

    return register


@breakage(check_identity, "namespace None")
def no_namespace(m: Manifests) -> None:
    m.deployment(CP)["metadata"].pop("namespace")


@breakage(check_kustomization, "control-plane.yaml is not in kustomization")
def file_not_applied(m: Manifests) -> None:
    m.kustomization["resources"].remove("control-plane.yaml")


@breakage(check_kustomization, "is not set by kustomization")
def image_not_rewritten(m: Manifests) -> None:
    m.container(CP)["image"] = "llama_agents:0.1.0"


@breakage(check_deployment_selectors, "selector does not match its pods")
def selector_off_its_pods(m: Manifests) -> None:
    m.deployment(CP)["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "cp"


@breakage(check_service_routes, "selects no Deployment's pods")
def service_selects_nothing(m: Manifests) -> None:
    m.one("Service", CP)["spec"]["selector"]["app.kubernetes.io/name"] = "cp"


@breakage(check_service_routes, "does not expose")
def service_targets_a_closed_port(m: Manifests) -> None:
    m.one("Service", AGENT)["spec"]["ports"][0]["targetPort"] = 8000


@breakage(check_disruption_budgets, "selects no pods")
def budget_selects_nothing(m: Manifests) -> None:
    (budget,) = m.of_kind("PodDisruptionBudget")
    budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "cp"


@breakage(check_env_names, "LLAMA_AGENTS_SERVICE_PROT is read nowhere")
def misspelt_variable(m: Manifests) -> None:
    env_entry(m.container(AGENT), "LLAMA_AGENTS_SERVICE_PORT")["name"] = "LLAMA_AGENTS_SERVICE_PROT"


@breakage(check_references, "key 'apikey' is not in secret.example.yaml")
def unknown_secret_key(m: Manifests) -> None:
    env_entry(m.container(CP), "LLAMA_AGENTS_API_KEY")["valueFrom"]["secretKeyRef"]["key"] = (
        "apikey"
    )


@breakage(check_references, "no ConfigMap config")
def unknown_config_map(m: Manifests) -> None:
    m.container(AGENT)["envFrom"][0]["configMapRef"]["name"] = "config"


@breakage(check_commands, "are not compose's command")
def command_drifts_from_compose(m: Manifests) -> None:
    m.container(CP)["args"][3] = "services/control_plane.py:orchestrator"


@breakage(check_commands, "`llama-agents serve services")
def no_such_cli_command(m: Manifests) -> None:
    m.container(TOOLS)["args"][1] = "services"


@breakage(check_commands, "replaces the image's ENTRYPOINT")
def entrypoint_replaced(m: Manifests) -> None:
    m.container(AGENT)["command"] = ["python", "-m", "llama_agents.console"]


@breakage(check_listening, "listens on 127.0.0.1")
def binds_localhost(m: Manifests) -> None:
    drop_env(m.container(CP), "LLAMA_AGENTS_CONTROL_PLANE_HOST")


@breakage(check_listening, "readinessProbe on port 8080, not 8000")
def probe_on_another_port(m: Manifests) -> None:
    m.container(CP)["readinessProbe"]["httpGet"]["port"] = 8080


@breakage(check_listening, "livenessProbe / answers 401")
def probe_needs_the_key(m: Manifests) -> None:
    m.container(AGENT)["livenessProbe"]["httpGet"]["path"] = "/"


@breakage(check_listening, "no port set")
def service_on_a_random_port(m: Manifests) -> None:
    drop_env(m.container(TOOLS), "LLAMA_AGENTS_SERVICE_PORT")


@breakage(check_listening, "scraped on 9090")
def scraped_on_another_port(m: Manifests) -> None:
    annotations = m.deployment(AGENT)["spec"]["template"]["metadata"]["annotations"]
    annotations["prometheus.io/port"] = "9090"


@breakage(check_startup_budget, "probes give up after 50 s")
def startup_probe_too_short(m: Manifests) -> None:
    m.container(CP)["startupProbe"]["failureThreshold"] = 10


@breakage(check_scaling, "the service consumes 'llama_agents.secret_fact_agent'")
def scaler_on_another_queue(m: Manifests) -> None:
    scaled_trigger(m)["metadata"]["queueName"] = "llama_agents.secret-fact-agent"


@breakage(check_scaling, "the service consumes 'prod.secret_fact_agent'")
def exchange_changed_in_one_place(m: Manifests) -> None:
    m.one("ConfigMap", "llama-agents-config")["data"]["LLAMA_AGENTS_EXCHANGE"] = "prod"


@breakage(check_scaling, "counts the steps replicas hold too")
def scaler_over_amqp(m: Manifests) -> None:
    scaled_trigger(m)["metadata"]["protocol"] = "amqp"


@breakage(check_scaling, "which is no Deployment here")
def scales_another_deployment(m: Manifests) -> None:
    (scaled,) = m.of_kind("ScaledObject")
    scaled["spec"]["scaleTargetRef"]["name"] = "agent"


@breakage(check_scaling, "sets replicas")
def replicas_beside_the_scaler(m: Manifests) -> None:
    m.deployment(AGENT)["spec"]["replicas"] = 2


@breakage(check_control_plane, "not active-active")
def one_control_plane(m: Manifests) -> None:
    m.deployment(CP)["spec"]["replicas"] = 1


@breakage(check_control_plane, "may take a replica down first")
def rolling_update_takes_one_down(m: Manifests) -> None:
    m.deployment(CP)["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 1


@breakage(check_control_plane, "is not PostgreSQL")
def state_on_sqlite(m: Manifests) -> None:
    m.example_secret()["stringData"]["state-url"] = "sqlite:////data/control_plane.sqlite3"


@breakage(check_tool_services, "deployed nowhere")
def tool_service_missing(m: Manifests) -> None:
    m.docs = [(f, d) for f, d in m.docs if d["metadata"]["name"] != TOOLS]


@breakage(check_addresses, "CONTROL_PLANE_URL does not reach the control plane")
def control_plane_url_on_a_wrong_port(m: Manifests) -> None:
    entry = env_entry(m.container(AGENT), "LLAMA_AGENTS_CONTROL_PLANE_URL")
    entry["value"] = "http://control-plane:8001"


@breakage(check_addresses, "does not reach it")
def public_host_of_another_service(m: Manifests) -> None:
    env_entry(m.container(AGENT), "LLAMA_AGENTS_SERVICE_PUBLIC_HOST")["value"] = TOOLS


def test_every_check_is_shown_to_catch_something() -> None:
    assert {b.check for b in BREAKAGES} == set(CHECKS)


@pytest.mark.parametrize("broken", BREAKAGES, ids=[b.breaks.__name__ for b in BREAKAGES])
def test_a_broken_manifest_is_caught(broken: Breakage) -> None:
    m = manifests()
    broken.breaks(m)
    found = problems_of(broken.check, m)
    assert any(broken.says in problem for problem in found), (broken.check.__name__, found)
