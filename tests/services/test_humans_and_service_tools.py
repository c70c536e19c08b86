"""Humans in the loop, services used as tools, components in pipelines: on both queues."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.prompts import PromptTemplate

from llama_agents import (
    ComponentService,
    ControlPlaneServer,
    HumanService,
    LocalLauncher,
    OfflineLLM,
    Pipeline,
    PipelineOrchestrator,
    RouterStep,
    ServiceAsTool,
    ServiceComponent,
    TaskDefinition,
    TaskFailedError,
)
from tests.conftest import QueueFactory
from tests.support.getting_started import SECRET, SecretTool, build_readme_system, readme_rules
from tests.support.helpers import DEADLINE
from tests.support.llm_server import (
    ScriptedLLMServer,
    answer_with_tool_results,
    call,
    when_no_tool_result,
    when_tool_offered,
    when_tool_result,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def human_pipeline(human: HumanService) -> PipelineOrchestrator:
    return PipelineOrchestrator(Pipeline.sequence(ServiceComponent.from_service(human)))


async def test_human_answers_through_fn_input(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    prompts: list[str] = []

    async def person(prompt: str) -> str:
        prompts.append(prompt)
        return "Yes, ship it."

    human = HumanService(
        queue,
        service_name="reviewer",
        fn_input=person,
        human_input_prompt="Please review: {input_str}",
    )
    launcher = LocalLauncher([human], ControlPlaneServer(queue, human_pipeline(human)), queue)
    assert await launcher.alaunch_single("the release notes", timeout=DEADLINE) == "Yes, ship it."
    assert prompts == ["Please review: the release notes"]


async def test_human_answers_over_http(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()

    async def nobody_at_the_console(prompt: str) -> str:
        raise EOFError("no stdin in a container")

    human = HumanService(queue, service_name="operator", fn_input=nobody_at_the_console, port=0)
    serving = asyncio.create_task(human.launch_server())
    url = await human.wait_until_serving()
    launcher = LocalLauncher([], ControlPlaneServer(queue, human_pipeline(human)), queue)
    await launcher.control_plane.start(persist=False)
    await launcher.control_plane.register_service(human.service_definition)
    running = asyncio.create_task(launcher.alaunch_single("approve the refund?", timeout=DEADLINE))

    request = await human.wait_for_request()
    async with httpx.AsyncClient(base_url=url) as http:
        [listed] = (await http.get("/tasks")).json()
        assert listed["id_"] == request.id_ and listed["input"] == "approve the refund?"
        missing = await http.post("/tasks/nope/handle", json={"result": "?"})
        assert missing.status_code == 404
        answered = await http.post(f"/tasks/{request.id_}/handle", json={"result": "approved"})
        assert answered.status_code == 200
    assert await running == "approved"
    assert human.pending() == []
    human.stop_server()
    await asyncio.wait_for(serving, DEADLINE)


async def test_human_request_times_out(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()

    async def silent(prompt: str) -> str:
        await asyncio.Event().wait()
        return ""

    patient = HumanService(
        queue,
        service_name="patient",
        fn_input=silent,
        timeout=0.2,
        timeout_answer="(no answer: proceed with the default)",
    )
    result = await patient.run_task(TaskDefinition(input="anyone?"))
    assert result.result == "(no answer: proceed with the default)" and result.error is None

    strict = HumanService(
        queue, service_name="strict", fn_input=silent, timeout=0.2, timeout_answer=None
    )
    launcher = LocalLauncher([strict], ControlPlaneServer(queue, human_pipeline(strict)), queue)
    with pytest.raises(TaskFailedError, match=r"no person answered within 0\.2s"):
        await launcher.alaunch_single("anyone?", timeout=DEADLINE)


async def test_agent_calls_another_agent_service_as_a_tool(
    queue_factory: QueueFactory, scripted_llm: ScriptedLLMServer
) -> None:
    rules = readme_rules()
    rules.rules.insert(
        0,
        (
            when_tool_offered("secret_fact_agent")
            & ~when_tool_offered("finalize")
            & when_no_tool_result(),
            call("secret_fact_agent", {"input": "What is the secret fact?"}),
        ),
    )
    rules.rules.insert(
        1,
        (
            when_tool_result("secret_fact_agent") & ~when_tool_offered("finalize"),
            answer_with_tool_results(),
        ),
    )
    scripted_llm.respond = rules
    queue = await queue_factory()
    secret = SecretTool()
    services, _ = build_readme_system(queue, scripted_llm.llm, secret)
    secret_service = services[0]
    running = await secret_service.launch_local()
    as_tool = ServiceAsTool.from_service_definition(queue, secret_service.service_definition)
    assert as_tool.metadata.description == "Useful for getting the secret fact."
    caller = FunctionAgent(tools=[as_tool], llm=scripted_llm.llm())
    result = await caller.run(user_msg="Ask the secret agent.")
    assert str(result) == SECRET
    assert secret.calls == 1
    running.cancel()


async def test_human_as_a_tool(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()

    async def person(prompt: str) -> str:
        return "42"

    human = HumanService(queue, service_name="oracle", fn_input=person)
    running = await human.launch_local()
    ask = ServiceAsTool.from_service_definition(queue, human.service_definition, timeout=5)
    output = await ask.acall(input="What is the answer?")
    assert output.content == "42" and not output.is_error
    running.cancel()


async def test_service_as_tool_timeout(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    await queue.declare_queue("asleep")
    from llama_agents import ServiceDefinition
    from llama_agents.errors import ToolCallTimeoutError

    definition = ServiceDefinition(service_name="asleep", description="Never answers.")
    quiet = ServiceAsTool.from_service_definition(queue, definition, timeout=0.2)
    assert (await quiet.acall(input="x")).is_error
    loud = ServiceAsTool.from_service_definition(queue, definition, timeout=0.2, raise_timeout=True)
    with pytest.raises(ToolCallTimeoutError):
        await loud.acall(input="x")


async def test_pipeline_of_components_with_a_router(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    template = ComponentService(
        PromptTemplate("Question: {question}"), queue, "Frames the question.", "framer"
    )
    llm = ComponentService(OfflineLLM(), queue, "Answers plainly.", "answerer")
    shouter = ComponentService(str.upper, queue, "Shouts.", "shouter")
    pipeline = Pipeline.sequence(
        ServiceComponent.from_service(template),
        RouterStep(
            {
                "shout": ServiceComponent.from_service(shouter),
                "answer": ServiceComponent.from_service(llm),
            },
            lambda value, labels: "shout" if value.endswith("!") else "answer",
        ),
    )
    launcher = LocalLauncher(
        [template, llm, shouter], ControlPlaneServer(queue, PipelineOrchestrator(pipeline)), queue
    )
    assert await launcher.alaunch_single("hello!", timeout=DEADLINE) == "QUESTION: HELLO!"
    plain = await launcher.alaunch_single("why?", timeout=DEADLINE)
    assert "offline LLM" in plain and "Question: why?" in plain


def test_component_must_be_usable() -> None:
    with pytest.raises(TypeError, match="component must be"):
        ComponentService(42, None, "d", "c")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one variable"):
        ComponentService(PromptTemplate("{a} {b}"), None, "d", "c")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_str"):
        HumanService(None, human_input_prompt="no placeholder")  # type: ignore[arg-type]


async def test_service_http_api_asks_for_the_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llama_agents import SimpleMessageQueue

    monkeypatch.setenv("LLAMA_AGENTS_API_KEY", "k3y")
    human = HumanService(SimpleMessageQueue(), service_name="guarded", port=0)
    serving = asyncio.create_task(human.launch_server())
    url = await human.wait_until_serving()
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/")).status_code == 401
        assert (await http.get("/tasks")).status_code == 401
        assert (await http.post("/process_message", content=b"{}")).status_code == 401
        ok = await http.get("/tasks", headers={"Authorization": "Bearer k3y"})
        assert ok.status_code == 200
    remote = human.as_consumer(remote=True)
    assert remote.headers["Authorization"] == "Bearer k3y"  # type: ignore[attr-defined]
    human.stop_server()
    await asyncio.wait_for(serving, DEADLINE)
