"""Fresh virtualenvs in which tests install packages with pip, as a user would.

Installing llama-index-core and its dependencies into a venv takes half a minute, so every
venv of a session takes its third-party dependencies from one shared *base*: a folder of links
to what the running environment already has installed, leaving out every distribution that
puts anything under `llama_agents/`. A venv reaches the base through a `.pth` line, after its own
site-packages (as `--system-site-packages` reaches the system's). pip sees the base's
distributions as installed and leaves them alone, so what it puts into the venv is exactly what
the test asks for, plus whatever the base lacks (llama-index-workflows, always: it owns
`llama_agents/workflows`).

pip installs from a session's *wheelhouse*: the published wheels of LlamaIndex's packages, at the
versions the running environment resolved, and our build backend, downloaded once. Every install
then resolves and unpacks as it would for a user, without asking the index again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

CHECKOUT = Path(__file__).resolve().parents[2]
NAMESPACE = "llama_agents"
# LlamaIndex's packages the coexistence tests install beside ours (and their fallbacks when the
# checkout's dev extra does not name them).
THEIRS = ("llama-agents-client", "llama-agents-server")
# Every distribution the tests look at; a venv has none of them until the test installs it.
NAMESPACE_DISTRIBUTIONS = ("llama-agents", *THEIRS, "llama-index-workflows")
PIP_TIMEOUT = 240.0
RUN_TIMEOUT = 120.0


def clean_env() -> dict[str, str]:
    """The environment of a user's shell: nothing that points Python at another environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONSAFEPATH"}
    }
    env.update(PYTHONNOUSERSITE="1", PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def their_requirements(checkout: Path = CHECKOUT) -> list[str]:
    """LlamaIndex's packages as the checkout's dev extra bounds them."""
    project = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]
    dev = [Requirement(r) for r in project.get("optional-dependencies", {}).get("dev", [])]
    named: dict[str, str] = {canonicalize_name(r.name): str(r) for r in dev}
    return [named.get(name, name) for name in THEIRS]


def _runtime_requirements(checkout: Path) -> list[Requirement]:
    project = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def _applies(requirement: Requirement, extra: str) -> bool:
    return requirement.marker is None or requirement.marker.evaluate({"extra": extra})


def _installed_closure(roots: Iterable[Requirement]) -> dict[str, metadata.Distribution]:
    """The installed distributions the roots need, transitively, extras included."""
    found: dict[str, metadata.Distribution] = {}
    walked: set[tuple[str, str]] = set()
    todo = [r for r in roots if _applies(r, "")]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # pip installs it into the venv itself
        found[name] = dist
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in walked:
                continue
            walked.add((name, extra))
            deps = (Requirement(line) for line in dist.requires or [])
            todo.extend(
                d for d in deps if (d.marker is not None or not extra) and _applies(d, extra)
            )
    return found


def link_dependency_base(target: Path, checkout: Path = CHECKOUT) -> Path:
    """A folder of links to the installed third-party dependencies of ours and theirs."""
    roots = [*_runtime_requirements(checkout), *map(Requirement, their_requirements(checkout))]
    target.mkdir(parents=True, exist_ok=True)
    for name, dist in sorted(_installed_closure(roots).items()):
        files = dist.files
        if name in NAMESPACE_DISTRIBUTIONS or files is None:
            continue
        tops = {f.parts[0] for f in files if f.parts[0] != ".."}
        if NAMESPACE in tops:
            continue  # another portion of the namespace: never shared
        for top in sorted(tops):
            link = target / top
            if not top.endswith(".pth") and not link.exists():
                link.symlink_to(Path(str(dist.locate_file(top))))
    assert not (target / NAMESPACE).exists(), "the dependency base must not hold llama_agents"
    return target


def fill_wheelhouse(target: Path, checkout: Path = CHECKOUT) -> Path:
    """The wheels the tests install that the dependency base does not provide."""
    missing = [name for name in THEIRS if not _installed(name)]
    if missing:
        raise AssertionError(f"{', '.join(missing)} not installed: install our '.[dev]' extra")
    published = ("llama-index-workflows", *THEIRS)
    pinned = [f"{name}=={metadata.version(name)}" for name in published]
    _pip(None, "download", "--no-deps", "--dest", str(target), *pinned)
    build = tomllib.loads((checkout / "pyproject.toml").read_text())["build-system"]["requires"]
    # hatchling asks for `editables` too when pip builds an editable install.
    _pip(None, "download", "--dest", str(target), *build, "editables~=0.3")
    return target


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def build_wheel(checkout: Path, out: Path, wheelhouse: Path) -> Path:
    """Our wheel, built by pip from the checkout as `pip wheel --no-deps .` would."""
    _pip(None, "wheel", *_offline(wheelhouse), "--no-deps", "--wheel-dir", str(out), str(checkout))
    (wheel,) = out.glob("llama_agents-*.whl")
    return wheel


def _offline(wheelhouse: Path) -> list[str]:
    return ["--no-index", "--find-links", str(wheelhouse)]


def _pip(python: Path | None, *args: str) -> None:
    target = ["--python", str(python)] if python else []
    command = [sys.executable, "-m", "pip", *target, "--quiet", *args]
    result = subprocess.run(
        command, capture_output=True, text=True, env=clean_env(), timeout=PIP_TIMEOUT
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


# Runs in the venv's interpreter: each statement is tried in turn, and each installed
# distribution's files are checked against its RECORD, so one package overwriting another's
# file shows up even when the imports still succeed.
_PROBE = """
import base64, hashlib, json, sys
from importlib import metadata

statements, distributions = json.loads(sys.argv[1]), json.loads(sys.argv[2])
report = {}
for name, statement in statements.items():
    try:
        exec(statement, {})
        report[name] = "ok"
    except BaseException as exc:
        report[name] = f"{type(exc).__name__}: {exc}"
changed = []
for name in distributions:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        continue
    for file in dist.files or []:
        if file.hash is None:
            continue
        try:
            data = file.locate().read_bytes()
        except OSError:
            changed.append(f"{name}: {file} is gone")
            continue
        digest = hashlib.new(file.hash.mode, data).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != file.hash.value:
            changed.append(f"{name}: {file} was overwritten")
module = sys.modules.get("llama_agents")
print(json.dumps({
    "imports": report,
    "file": getattr(module, "__file__", None),
    "changed": changed,
}))
"""


@dataclass(frozen=True)
class Probe:
    """What a fresh interpreter of a venv could import, and whose `llama_agents` it got."""

    imports: dict[str, str]
    file: str | None
    changed: list[str]


@dataclass(frozen=True)
class Venv:
    root: Path
    wheelhouse: Path

    @classmethod
    def create(cls, root: Path, base: Path, wheelhouse: Path) -> Venv:
        """A fresh venv (no pip of its own: the running pip installs into it)."""
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(root)],
            check=True,
            env=clean_env(),
            timeout=RUN_TIMEOUT,
        )
        venv = cls(root, wheelhouse)
        (venv.site_packages / "_dependency_base.pth").write_text(f"{base}\n")
        return venv

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        paths = sysconfig.get_paths(
            "venv", vars={"base": str(self.root), "platbase": str(self.root)}
        )
        return Path(paths["purelib"])

    def pip(self, *args: str) -> None:
        _pip(self.python, *args)

    def install(self, *targets: str) -> None:
        self.pip("install", *_offline(self.wheelhouse), *targets)

    def uninstall(self, *names: str) -> None:
        self.pip("uninstall", "--yes", *names)

    def script(self, name: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
        """Start one of the venv's console scripts, as a user's shell would."""
        return subprocess.Popen(
            [str(self.root / "bin" / name), *args],
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def probe(self, statements: dict[str, str], cwd: Path) -> Probe:
        """Try each statement in one fresh interpreter of this venv, run from `cwd`."""
        argv = [json.dumps(statements), json.dumps(NAMESPACE_DISTRIBUTIONS)]
        process = subprocess.Popen(
            [str(self.python), "-c", _PROBE, *argv],
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        done = finish(process)
        if done.returncode != 0:
            raise AssertionError(f"the probe itself failed:\n{done.stdout}\n{done.stderr}")
        return Probe(**json.loads(done.stdout))


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Wait for a started process; one that overruns the deadline is killed, not left behind."""
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
