"""Messages: JSON on the wire, validated, with one error type that names the field."""

from __future__ import annotations

import json
import pickle

import pytest
from llama_index.core.llms import ChatMessage

from llama_agents import (
    ActionTypes,
    HumanResponse,
    MessageDecodeError,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
    ToolCall,
    ToolCallBundle,
    ToolCallResult,
)
from llama_agents.messages import SCHEMA_VERSION


def test_queue_message_round_trips_as_json() -> None:
    message = QueueMessage(
        type="secret_fact_agent",
        action=ActionTypes.NEW_TASK,
        publisher_id="control_plane",
        data=TaskDefinition(input="What is the secret fact?").model_dump(),
        correlation_id="c-1",
        reply_to="caller.replies",
        headers={"trace": "abc"},
    )
    raw = message.encode()
    assert isinstance(json.loads(raw), dict), "the wire format is plain JSON"
    decoded = QueueMessage.decode(raw)
    assert decoded == message
    assert decoded.schema_version == SCHEMA_VERSION
    assert decoded.action is ActionTypes.NEW_TASK


def test_defaults_are_unique_ids_and_utc_stats() -> None:
    first, second = QueueMessage(), QueueMessage()
    assert first.id_ != second.id_
    assert first.stats.publish_time is None


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (b"{not json", None, "Invalid JSON"),
        (b'{"type": "has space"}', "type", "not a valid message type"),
        (b'{"action": "explode"}', "action", "Input should be"),
        (b'{"data": [1, 2]}', "data", "should be an object"),
        (b'{"stats": {"publish_time": "yesterday"}}', "stats.publish_time", "datetime"),
        (b'{"schema_version": 2}', "schema_version", "newer than the supported"),
    ],
)
def test_decode_errors_name_the_field_and_keep_the_body(
    raw: bytes, field: str | None, reason: str
) -> None:
    with pytest.raises(MessageDecodeError) as excinfo:
        QueueMessage.decode(raw)
    error = excinfo.value
    assert error.raw == raw
    assert error.field == field
    assert reason in str(error)


def test_payloads_round_trip_with_chat_history() -> None:
    history = [ChatMessage(role="user", content="hi"), ChatMessage(role="assistant", content="yo")]
    payloads = [
        TaskDefinition(input="q", state={"k": [1]}, agent_id="a"),
        TaskResult(task_id="t", history=history, result="yo", data={"x": 1}),
        ToolCall(
            tool_call_bundle=ToolCallBundle(tool_name="f", tool_args=[1], tool_kwargs={"a": 2}),
            source_id="agent",
        ),
        ToolCallResult(id_="1", tool_message=history[1], result="ok"),
        ServiceDefinition(service_name="secret_fact_agent", description="d", host="h", port=8002),
        HumanResponse(result="yes"),
    ]
    for payload in payloads:
        message = QueueMessage(type="x", data=payload.model_dump(mode="json"))
        again = type(payload).from_data(QueueMessage.decode(message.encode()).data)
        assert again == payload


def test_payload_validation_errors_use_the_library_error() -> None:
    with pytest.raises(MessageDecodeError) as excinfo:
        TaskDefinition.from_data({"state": {}})
    assert excinfo.value.field == "input"
    with pytest.raises(MessageDecodeError) as excinfo:
        ServiceDefinition.from_data({"service_name": "no spaces allowed", "description": ""})
    assert excinfo.value.field == "service_name"


def test_nothing_is_pickled_on_the_wire() -> None:
    raw = QueueMessage(data={"a": 1}).encode()
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(raw)
