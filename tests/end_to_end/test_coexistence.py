"""Ours installs beside LlamaIndex's own `llama_agents.*` packages, in either order.

llama-index-workflows installs `llama_agents/workflows`, llama-agents-client `llama_agents/client`,
llama-agents-server `llama_agents/server`; ours is the regular package `llama_agents` that extends
its `__path__` over them. Each case installs the real packages with pip into a fresh venv (ours
editable or as a built wheel, before or after theirs) and imports them in fresh interpreters
run from outside the checkout. The cases run two at a time (they spend their time in pip and in
importing llama-index), each test then checks its own case's outcome.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.venvs import (
    CHECKOUT,
    Probe,
    Venv,
    build_wheel,
    fill_wheelhouse,
    finish,
    link_dependency_base,
    their_requirements,
)

pytestmark = pytest.mark.slow

OURS = (
    "from llama_agents import LlamaAgentsClient, AsyncLlamaAgentsClient, ControlPlaneServer,"
    " AgentService, RabbitMQMessageQueue"
)
THEIRS = {
    "workflows": "import llama_agents.workflows",
    "client": "from llama_agents.client import WorkflowClient",
    "server": "from llama_agents.server import WorkflowServer",
}
EVERYTHING = {**THEIRS, "ours": OURS}
INSTALLS = ["editable", "wheel"]
ORDERS = ["ours-first", "theirs-first"]
Case = tuple[str, str]  # (how ours is installed, which goes in first)


@dataclass
class Outcome:
    """What a case's venv showed after each step."""

    our_init: Path
    together: Probe
    console: subprocess.CompletedProcess[str]
    without_ours: Probe | None = None
    without_client: Probe | None = None


@dataclass(frozen=True)
class Shared:
    base: Path
    wheelhouse: Path
    wheel: Path | None


def _run_case(case: Case, shared: Shared, root: Path) -> Outcome:
    install, order = case
    venv = Venv.create(root / "venv", shared.base, shared.wheelhouse)
    elsewhere = root / "elsewhere"  # outside the checkout: nothing comes from the source tree
    elsewhere.mkdir()
    ours = [str(shared.wheel)] if install == "wheel" else ["--editable", str(CHECKOUT)]
    theirs = their_requirements()
    for targets in [ours, theirs] if order == "ours-first" else [theirs, ours]:
        venv.install(*targets)

    console = venv.script("llama-agents", "--help", cwd=elsewhere)
    together = venv.probe(EVERYTHING, elsewhere)
    package = venv.site_packages if install == "wheel" else CHECKOUT
    outcome = Outcome(package / "llama_agents" / "__init__.py", together, finish(console))
    if install == "wheel":
        venv.uninstall("llama-agents")
        outcome.without_ours = venv.probe(THEIRS, elsewhere)
        venv.install(*ours)
        venv.uninstall("llama-agents-client")
        outcome.without_client = venv.probe(
            {"ours": OURS, "workflows": THEIRS["workflows"]}, elsewhere
        )
    return outcome


def _selected_cases(request: pytest.FixtureRequest) -> list[Case]:
    cases: list[Case] = []
    for item in request.session.items:
        if isinstance(item, pytest.Function) and item.module is request.module:
            params = item.callspec.params
            case = (str(params.get("install", "wheel")), str(params["order"]))
            if case not in cases:
                cases.append(case)
    return cases


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Case, Future[Outcome]]]:
    cases = _selected_cases(request)
    wheelhouse = fill_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    wants_wheel = any(install == "wheel" for install, _ in cases)
    wheel = (
        build_wheel(CHECKOUT, tmp_path_factory.mktemp("wheel"), wheelhouse) if wants_wheel else None
    )
    shared = Shared(link_dependency_base(tmp_path_factory.mktemp("base")), wheelhouse, wheel)
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {
            case: pool.submit(_run_case, case, shared, tmp_path_factory.mktemp("-".join(case)))
            for case in cases
        }


def _all_ok(statements: dict[str, str]) -> dict[str, str]:
    return dict.fromkeys(statements, "ok")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("install", INSTALLS)
def test_ours_and_theirs_import_side_by_side(
    install: str, order: str, outcomes: dict[Case, Future[Outcome]]
) -> None:
    outcome = outcomes[install, order].result()
    assert outcome.together.imports == _all_ok(EVERYTHING)
    assert outcome.together.file is not None
    assert Path(outcome.together.file).resolve() == outcome.our_init.resolve()
    assert outcome.together.changed == []  # no package overwrote another's file
    assert outcome.console.returncode == 0, outcome.console.stderr
    assert "Usage" in outcome.console.stdout


@pytest.mark.parametrize("order", ORDERS)
def test_uninstalling_one_wheel_leaves_the_other_whole(
    order: str, outcomes: dict[Case, Future[Outcome]]
) -> None:
    outcome = outcomes["wheel", order].result()
    # Uninstalling ours takes only our files: theirs import through the namespace again.
    assert outcome.without_ours is not None
    assert outcome.without_ours.imports == _all_ok(THEIRS)
    assert outcome.without_ours.file is None  # no `llama_agents/__init__.py` left behind
    assert outcome.without_ours.changed == []
    # Uninstalling llama-agents-client takes only its files: ours stays whole.
    assert outcome.without_client is not None
    assert outcome.without_client.imports == {"ours": "ok", "workflows": "ok"}
    assert outcome.without_client.file is not None
    assert Path(outcome.without_client.file).resolve() == outcome.our_init.resolve()
    assert outcome.without_client.changed == []
