"""OpenTelemetry across processes: a control plane and two services, each its own process,
export OTLP over HTTP to a collector in the test process. Every task is one trace holding
spans of all three; each consume span's parent is its publish span; the agent's LLM calls
sit under its step; a broker restart mid-run breaks no trace."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llama_agents import AsyncLlamaAgentsClient
from tests.support import broker
from tests.support.helpers import DEADLINE
from tests.support.llm_server import (
    RuleBook,
    ScriptedLLMServer,
    answer,
    answer_with_tool_results,
    call,
    when_tool_offered,
    when_tool_result,
)
from tests.support.llm_server import scripted_llm_fixture as scripted_llm  # noqa: F401
from tests.support.otlp import OtlpCollector, SpanRecord, running_collector
from tests.support.processes import CLI, ProcessGroup, free_port, offline_env, run_to_end

pytestmark = pytest.mark.rabbitmq

TASKS = 20
SYSTEM = "tests/support/tracing_system.py"
SERVICES = {"agent": f"{SYSTEM}:build_agent", "shout": f"{SYSTEM}:build_shout"}
PROCESSES = {"control_plane", *SERVICES}
TASK_ID = "llama_agents.task_id"


class TracedSystem:
    def __init__(
        self,
        amqp_url: str,
        exchange: str,
        tmp_path: Path,
        otlp: OtlpCollector,
        llm_base: str,
        sampler: dict[str, str] | None = None,
        orchestrator: str = f"{SYSTEM}:build_orchestrator",
        services: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.otlp = otlp
        self.extra = {
            **(sampler or {}),
            "LLAMA_AGENTS_AMQP_URL": amqp_url,
            "LLAMA_AGENTS_EXCHANGE": exchange,
            "LLAMA_AGENTS_CONTROL_PLANE_URL": self.url,
            "LLAMA_AGENTS_STATE_PATH": str(tmp_path / "control_plane.sqlite3"),
            "LLAMA_AGENTS_TEST_LLM_BASE": llm_base,
        }
        self.group = ProcessGroup()
        self.orchestrator = orchestrator
        self.services = SERVICES if services is None else services

    async def up(self) -> None:
        argv = [CLI, "serve", "control-plane", "--orchestrator", self.orchestrator]
        await self.group.start(
            "control_plane",
            [*argv, "--port", str(self.port)],
            offline_env({**self.extra, **self.otlp.env("control_plane")}),
            ready_marker="control plane ready",
        )
        for name, target in self.services.items():
            await self.group.start(
                name,
                [CLI, "serve", "service", target, "--port", str(free_port())],
                offline_env({**self.extra, **self.otlp.env(name)}),
                ready_marker=" ready at",
            )


@pytest.fixture
def sampler() -> dict[str, str]:
    """The OTEL_TRACES_SAMPLER variables of every process (none: the SDK's default, all)."""
    return {}


@pytest.fixture
async def system(
    amqp_url: str,
    exchange_name: str,
    tmp_path: Path,
    scripted_llm: ScriptedLLMServer,  # noqa: F811
    sampler: dict[str, str],
) -> AsyncIterator[TracedSystem]:
    scripted_llm.respond = RuleBook([], default=answer("a cria"))
    async with running_collector() as otlp:
        running = TracedSystem(
            amqp_url, exchange_name, tmp_path, otlp, scripted_llm.base_url, sampler
        )
        try:
            await running.up()
            yield running
        finally:
            await running.group.close()
            await broker.delete_system(amqp_url, exchange_name)


def traces_of(spans: list[SpanRecord]) -> dict[str, set[str]]:
    """Task id -> the trace ids of the spans naming it."""
    found: dict[str, set[str]] = defaultdict(set)
    for span in spans:
        task_id = span.attributes.get(TASK_ID)
        if isinstance(task_id, str):
            found[task_id].add(span.trace_id)
    return found


def problems(task_id: str, spans: list[SpanRecord]) -> list[str]:
    """What the task's trace lacks or gets wrong (empty: all is well)."""
    trace_ids = traces_of(spans).get(task_id, set())
    if len(trace_ids) != 1:
        return [f"{len(trace_ids)} trace ids"]
    (trace_id,) = trace_ids
    trace = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in trace}
    found = []
    missing = PROCESSES - {s.service for s in trace}
    if missing:
        found.append(f"no spans from {sorted(missing)}")
    consumes = [s for s in trace if s.kind == "SPAN_KIND_CONSUMER"]
    # The agent's and shout's steps, and their two results at the control plane.
    if len(consumes) < 4:
        found.append(f"{len(consumes)} consume spans")
    for span in consumes:
        parent = by_id.get(span.parent_id or "")
        if parent is None or parent.kind != "SPAN_KIND_PRODUCER":
            found.append(f"{span.name} ({span.service}) has no publish span as parent")
        elif parent.attributes.get("messaging.message.id") != span.attributes.get(
            "messaging.message.id"
        ):
            found.append(f"{span.name}: its parent publish is another message's")
        elif span.attributes.get("messaging.system") != "rabbitmq":
            found.append(f"{span.name}: messaging.system {span.attributes.get('messaging.system')}")
    llm_calls = [s for s in trace if s.attributes.get("gen_ai.operation.name") == "chat"]
    if not llm_calls:
        found.append("no LLM call span")
    for span in llm_calls:
        ancestor = by_id.get(span.parent_id or "")
        while ancestor is not None and ancestor.name != "step agent":
            ancestor = by_id.get(ancestor.parent_id or "")
        if ancestor is None:
            found.append(f"LLM span {span.name} is not under the agent's step")
    servers = [s for s in trace if s.kind == "SPAN_KIND_SERVER"]
    if [s.service for s in servers] != ["control_plane"]:
        # The request that created the task; FastAPI's operation spans stay off.
        found.append(f"server spans {[(s.service, s.name) for s in servers]}")
    found += [f"FastAPI operation span {s.name}" for s in trace if s.name.startswith("fastapi.")]
    names = {(s.service, s.name) for s in trace}
    for wanted in [
        ("control_plane", "create task"),
        ("control_plane", "decide"),
        ("control_plane", "publish human"),
        ("agent", "step agent"),
        ("shout", "step shout"),
    ]:
        if wanted not in names:
            found.append(f"no {wanted[1]!r} span from {wanted[0]}")
    return found


async def all_traced(otlp: OtlpCollector, task_ids: list[str]) -> dict[str, list[str]]:
    """Wait (at each export) until every task's trace is complete; then what is still wrong."""
    with contextlib.suppress(TimeoutError):
        await otlp.wait_until(
            lambda spans: not any(problems(t, spans) for t in task_ids), timeout=DEADLINE
        )
    return {t: p for t in task_ids if (p := problems(t, list(otlp.spans)))}


async def submit(client: AsyncLlamaAgentsClient, count: int) -> list[str]:
    return list(await asyncio.gather(*(client.create_task("who?") for _ in range(count))))


async def test_every_task_is_one_trace_across_three_processes(system: TracedSystem) -> None:
    async with AsyncLlamaAgentsClient(system.url) as client:
        task_ids = await submit(client, TASKS)
        results = await asyncio.gather(
            *(client.wait_for_result(t, timeout=DEADLINE) for t in task_ids)
        )
    assert [r.result for r in results] == ["A CRIA"] * TASKS

    assert await all_traced(system.otlp, task_ids) == {}
    # One trace per task, none shared.
    assert len({next(iter(traces_of(system.otlp.spans)[t])) for t in task_ids}) == TASKS


@pytest.mark.parametrize(
    "sampler",
    [{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}],
)
async def test_a_task_the_sampler_dropped_leaves_no_span_anywhere(system: TracedSystem) -> None:
    """Half the tasks are traced, whole; the others leave no span in any process (their
    context still travels, dropped, so no hop starts a trace of its own)."""
    async with AsyncLlamaAgentsClient(system.url) as client:
        task_ids = await submit(client, TASKS)
        results = await asyncio.gather(
            *(client.wait_for_result(t, timeout=DEADLINE) for t in task_ids)
        )
    assert [r.result for r in results] == ["A CRIA"] * TASKS
    # Stop every process: each exports what it still holds on its way out.
    await system.group.close()
    traced = traces_of(system.otlp.spans)
    kept = [t for t in task_ids if t in traced]
    assert 0 < len(kept) < TASKS, "a ratio of 0.5 keeps some tasks, not all"
    assert {t: p for t in kept if (p := problems(t, list(system.otlp.spans)))} == {}
    dropped = set(task_ids) - set(kept)
    orphans = [s for s in system.otlp.spans if s.attributes.get(TASK_ID) in dropped]
    assert orphans == []


@pytest.mark.broker_restart
async def test_a_broker_restart_mid_run_breaks_no_trace(
    system: TracedSystem, broker_control: None
) -> None:
    async with AsyncLlamaAgentsClient(system.url) as client:
        task_ids = await submit(client, TASKS)
        waits = {
            t: asyncio.ensure_future(client.wait_for_result(t, timeout=DEADLINE * 3))
            for t in task_ids
        }
        async with asyncio.timeout(DEADLINE):
            await next(asyncio.as_completed(list(waits.values())))
        before = {t for t, w in waits.items() if w.done()}
        await broker.stop_app()
        await broker.start_app()
        results = await asyncio.gather(*waits.values())
    assert [r.result for r in results] == ["A CRIA"] * TASKS
    after = set(task_ids) - before
    assert after, "every task finished before the broker went down"

    assert await all_traced(system.otlp, sorted(after)) == {}


async def test_an_llm_orchestrators_decisions_and_an_agents_tool_call_are_spans_of_the_task(
    amqp_url: str,
    exchange_name: str,
    tmp_path: Path,
    scripted_llm: ScriptedLLMServer,  # noqa: F811
) -> None:
    """The orchestrator's LLM calls sit under its `decide` spans in the control plane; the
    agent's tool call under its step, named; one trace holds them all."""
    scripted_llm.respond = RuleBook(
        [
            (when_tool_result("agent"), answer_with_tool_results()),  # the second decision
            (when_tool_offered("agent"), call("agent", {"input": "what is a baby llama?"})),
            (when_tool_result("lookup"), answer_with_tool_results()),  # the agent, after it
            (when_tool_offered("lookup"), call("lookup", {"query": "baby llama"})),
        ],
        default=answer("no rule"),
    )
    async with running_collector() as otlp:
        system = TracedSystem(
            amqp_url,
            exchange_name,
            tmp_path,
            otlp,
            scripted_llm.base_url,
            orchestrator=f"{SYSTEM}:build_llm_orchestrator",
            services={"agent": f"{SYSTEM}:build_tool_agent"},
        )
        try:
            await system.up()
            async with AsyncLlamaAgentsClient(system.url) as client:
                task_id = await client.create_task("What is a baby llama called?")
                result = await client.wait_for_result(task_id, timeout=DEADLINE)
            assert result.result == "a cria", result
            await system.group.close()  # each process exports what it holds on its way out
        finally:
            await system.group.close()
            await broker.delete_system(amqp_url, exchange_name)
        spans = list(otlp.spans)
    (trace_id,) = traces_of(spans)[task_id]
    trace = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in trace}

    def under(span: SpanRecord, name: str) -> bool:
        ancestor = by_id.get(span.parent_id or "")
        while ancestor is not None and ancestor.name != name:
            ancestor = by_id.get(ancestor.parent_id or "")
        return ancestor is not None

    chats = [s for s in trace if s.attributes.get("gen_ai.operation.name") == "chat"]
    deciding = [s for s in chats if s.service == "control_plane" and under(s, "decide")]
    assert len(deciding) >= 2, "both decisions asked the LLM, under their decide spans"
    assert all(s.attributes.get("gen_ai.request.model") for s in deciding)
    tools = [s for s in trace if s.attributes.get("gen_ai.tool.name") == "lookup"]
    assert tools, "the agent tool call is a span"
    assert all(s.service == "agent" and under(s, "step agent") for s in tools)


CLIENT = """
import asyncio, sys
from llama_agents import AsyncLlamaAgentsClient

async def main() -> None:
    async with AsyncLlamaAgentsClient(sys.argv[1]) as client:
        task_id = await client.create_task("who?")
        result = await client.wait_for_result(task_id, timeout=30)
    print("TASK", task_id, result.result)

asyncio.run(main())
"""


async def test_a_trace_starts_in_a_traced_client_process(system: TracedSystem) -> None:
    """An application using the SDK with the OTEL variables set: its request is the root of
    the task's trace, and the control plane's spans continue it."""
    code, output = await run_to_end(
        [sys.executable, "-c", CLIENT, system.url],
        offline_env(system.otlp.env("client_app")),
        timeout=60,
    )
    assert code == 0, output
    task_id = next(line.split()[1] for line in output.splitlines() if line.startswith("TASK"))
    assert output.strip().endswith("A CRIA")
    assert await all_traced(system.otlp, [task_id]) == {}
    spans = list(system.otlp.spans)
    (trace_id,) = traces_of(spans)[task_id]
    trace = [s for s in spans if s.trace_id == trace_id]
    roots = [s for s in trace if s.parent_id is None]
    assert [r.service for r in roots] == ["client_app"], [(r.service, r.name) for r in roots]
    assert any(s.service == "control_plane" for s in trace)
