"""The error contract: everything the library raises derives from `LlamaAgentsError`.

Static checks walk the source of every module under `llama_agents/`; behaviour checks show
the new classes still satisfy the builtin types callers catch, and that a handler's
"do not retry" signal dead-letters a message at once on both queues.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
from pathlib import Path

import pytest

import llama_agents
from llama_agents import (
    CallableMessageConsumer,
    ComponentService,
    ControlPlaneServer,
    HumanService,
    QueueMessage,
    SimpleMessageQueue,
    errors,
)
from llama_agents.errors import (
    ConfigurationError,
    ConfigurationTypeError,
    DeadLetterTimeoutError,
    HumanRequestNotFoundError,
    LlamaAgentsError,
    MessageDecodeError,
    NonRetryableMessageError,
    NotStartedError,
    TaskTimeoutError,
)
from llama_agents.messages import ActionTypes, TaskDefinition, validate_routing_key
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator

PACKAGE = Path(__file__).resolve().parents[2] / "llama_agents"

BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
#: Not errors: the iterator protocol's way of saying "no more items".
#: Raised because a Python protocol requires them (iteration; a module `__getattr__`).
PROTOCOL_SIGNALS = frozenset({"StopIteration", "StopAsyncIteration", "AttributeError"})


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "builtins" else None
    return None


def builtin_exceptions_raised(package: Path = PACKAGE) -> list[str]:
    """Every `raise` of a builtin exception class, and every builtin exception built to be
    raised elsewhere (`return ValueError(...)`, `future.set_exception(...)`), as file:line.

    A bare `raise` (re-raise) is fine, and so is `raise OurError(...) from exc`.
    """
    found: list[str] = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                candidate: ast.expr = node.exc
            elif isinstance(node, ast.Call):
                candidate = node
            else:
                continue
            name = _name(candidate)
            if name in BUILTIN_EXCEPTIONS and name not in PROTOCOL_SIGNALS:
                where = f"{path.relative_to(package.parent)}:{node.lineno}"
                if where + f" {name}" not in found:
                    found.append(f"{where} {name}")
    return found


def test_nothing_in_the_library_raises_a_builtin_exception() -> None:
    offenders = builtin_exceptions_raised()
    assert not offenders, (
        f"{len(offenders)} raise(s) of builtin exceptions; raise a LlamaAgentsError "
        "subclass from llama_agents/errors.py instead:\n" + "\n".join(offenders)
    )


def test_exception_classes_are_defined_only_in_errors_py() -> None:
    known = BUILTIN_EXCEPTIONS | set(_error_classes())
    elsewhere = []
    for path in _modules():
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {_base_name(base) for base in node.bases}
                if bases & known or any(b.endswith(("Error", "Exception")) for b in bases):
                    elsewhere.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not elsewhere, f"exception classes outside errors.py: {elsewhere}"


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _error_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }


def test_every_error_class_derives_from_the_root_and_is_exported() -> None:
    classes = _error_classes()
    assert len(classes) >= 30
    for name, cls in classes.items():
        assert issubclass(cls, LlamaAgentsError), name
        assert getattr(llama_agents, name) is cls, f"llama_agents.{name} is not errors.{name}"
        assert name in llama_agents.__all__, f"{name} missing from llama_agents.__all__"


def _drawn_tree() -> dict[str, tuple[str | None, set[str]]]:
    """The tree in errors.py's docstring: each class, its drawn parent and builtin mixins."""
    drawn: dict[str, tuple[str | None, set[str]]] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        words = line.replace("|", " ").replace("+--", "   ").split()
        if not words or not words[0].isidentifier() or not words[0].endswith("Error"):
            continue
        name, depth = words[0], len(line) - len(line.lstrip(" |+-"))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        mixins = {w.strip("(),") for w in words[1:]}
        drawn[name] = (stack[-1][1] if stack else None, mixins)
        stack.append((depth, name))
    return drawn


def test_the_docstring_tree_draws_every_class_as_it_is() -> None:
    drawn = _drawn_tree()
    classes = _error_classes()
    assert set(drawn) == set(classes), "errors.py's docstring tree is out of date"
    for name, cls in classes.items():
        ours = [b.__name__ for b in cls.__bases__ if b.__module__ == errors.__name__]
        theirs = {b.__name__ for b in cls.__bases__ if b.__module__ == "builtins"}
        parent, mixins = drawn[name]
        assert ours == ([parent] if parent else []), f"{name}: drawn under {parent}, is {ours}"
        assert mixins == (theirs - {"Exception"}), f"{name}: drawn with {mixins}, has {theirs}"


# -- the builtins callers catch keep working ---------------------------------------------


async def test_new_classes_are_still_the_builtins_they_replace() -> None:
    with pytest.raises(ConfigurationTypeError) as wrong_type:
        CallableMessageConsumer(handler="not callable", message_type="t")  # type: ignore[arg-type]
    assert isinstance(wrong_type.value, TypeError)
    assert isinstance(wrong_type.value, ConfigurationError)

    with pytest.raises(ConfigurationError) as bad_key:
        validate_routing_key("has spaces")
    assert isinstance(bad_key.value, ValueError)

    control_plane = ControlPlaneServer(SimpleMessageQueue(), FanOutOrchestrator(["x"]))
    with pytest.raises(NotStartedError, match="start"):
        _ = control_plane.manager
    assert issubclass(NotStartedError, RuntimeError)

    human = HumanService(SimpleMessageQueue(), service_name="person")
    with pytest.raises(HumanRequestNotFoundError) as missing:
        human.answer("no-such-request", "hello")
    assert isinstance(missing.value, KeyError)
    assert str(missing.value) == "no request 'no-such-request' is waiting for a person"


async def test_waiting_for_a_task_times_out_with_our_error() -> None:
    queue = SimpleMessageQueue()
    await queue.declare_queue("nobody")  # the step waits there: nobody consumes it
    control_plane = ControlPlaneServer(queue, FanOutOrchestrator(["nobody"]))
    await control_plane.start(persist=False)
    try:
        record = await control_plane.create_task("hello")
        with pytest.raises(TaskTimeoutError, match=record.task_id) as timed_out:
            await control_plane.wait_for_task(record.task_id, timeout=0.2)
        assert isinstance(timed_out.value, TimeoutError)
    finally:
        await control_plane.close()


async def test_waiting_for_dead_letters_times_out_with_our_error(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    with pytest.raises(DeadLetterTimeoutError, match="fewer than 1 dead letters") as timed_out:
        await queue.fetch_dead_letters(wait_for=1, timeout=0.2)
    assert isinstance(timed_out.value, TimeoutError)


# -- "do not retry this message" ---------------------------------------------------------


def test_a_decode_error_is_one_kind_of_non_retryable_message() -> None:
    assert issubclass(MessageDecodeError, NonRetryableMessageError)
    assert not issubclass(NonRetryableMessageError, MessageDecodeError)


async def test_a_handler_refusing_a_message_dead_letters_it_at_once(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory(max_attempts=5)
    calls: list[str] = []

    async def refuse(message: QueueMessage) -> None:
        calls.append(message.id_)
        raise NonRetryableMessageError("this message is for another system")

    start = await queue.register_consumer(
        CallableMessageConsumer(handler=refuse, message_type="refusing")
    )
    consuming = asyncio.create_task(start())
    message = QueueMessage(type="refusing")
    await queue.publish(message)
    [letter] = await queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
    consuming.cancel()
    assert calls == [message.id_], "a refused message must not be retried"
    assert letter.attempts == 1
    assert letter.reason == (
        "not retryable (NonRetryableMessageError): this message is for another system"
    )


async def test_a_service_dead_letters_an_action_it_does_not_take_at_once(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory(max_attempts=5)
    service = ComponentService(str.upper, queue, "Shouts.", "shouter")
    running = await service.launch_local()
    wrong = QueueMessage(
        type="shouter",
        action=ActionTypes.COMPLETED_TOOL_CALL,
        data=TaskDefinition(input="hi").model_dump(mode="json"),
    )
    await queue.publish(wrong)
    [letter] = await queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
    running.cancel()
    assert letter.attempts == 1
    assert letter.message().id_ == wrong.id_
    assert "not retryable" in letter.reason
    assert "service 'shouter' does not handle" in letter.reason
    assert service.counters["received"] == 1, "the refused message was handled once"
