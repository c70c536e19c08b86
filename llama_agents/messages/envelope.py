"""The envelope every message travels in, and its JSON codec.

Messages cross processes as UTF-8 JSON only (never pickle). Decoding failures raise one
error type, `MessageDecodeError`, that names the offending field and keeps the raw body, so
the queue can dead-letter the message with a useful reason.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from llama_agents.errors import ConfigurationError, MessageDecodeError

#: The envelope version this library writes; it reads this version and older ones.
SCHEMA_VERSION = 1

#: The message type final results are published to by default.
HUMAN_MESSAGE_TYPE = "human"
#: The message type of the control plane: services send their results there.
CONTROL_PLANE_MESSAGE_TYPE = "control_plane"
#: The `publisher_id` of what the control plane publishes.
CONTROL_PLANE_PUBLISHER = "control_plane"

_ROUTING_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


def validate_routing_key(value: str) -> str:
    """Check that a message type / service name is usable as an AMQP routing key and queue name.

    Wildcards (`*`, `#`) and spaces are refused so a publish can never fan out by accident.
    """
    if not _ROUTING_KEY.match(value):
        raise ConfigurationError(
            f"{value!r} is not a valid message type: use 1-200 characters from "
            "letters, digits, '_', '-' and '.', starting with a letter or digit"
        )
    return value


RoutingKey = Annotated[str, AfterValidator(validate_routing_key)]


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class ActionTypes(StrEnum):
    """What a message asks its receiver to do, or reports."""

    NEW_TASK = "new_task"
    COMPLETED_TASK = "completed_task"
    REQUEST_FOR_HELP = "request_for_help"
    NEW_TOOL_CALL = "new_tool_call"
    COMPLETED_TOOL_CALL = "completed_tool_call"
    #: A workflow run reports events, a checkpoint, waiting or released (to the control plane).
    RUN_UPDATE = "run_update"
    #: An event sent into a run (to the replica holding it).
    RUN_INPUT = "run_input"
    #: Stop a task's run (to every replica of its service).
    RUN_CANCEL = "run_cancel"
    #: A replica hands a step back unrun (to the control plane).
    RUN_BOUNCE = "run_bounce"


class QueueMessageStats(BaseModel):
    """When a message was published and processed (UTC)."""

    publish_time: datetime | None = None
    #: Set by the receiving queue: this delivery is not the first (a consumer died holding
    #: the message, or failed on it).
    redelivered: bool = False
    process_start_time: datetime | None = None
    process_end_time: datetime | None = None


class QueueMessage(BaseModel):
    """The envelope of every message on the fabric.

    `type` is the routing key: the name of the consumer type (a service, `control_plane`,
    `human`) that should receive the message.
    """

    model_config = ConfigDict(populate_by_name=True)

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    id_: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=200)
    publisher_id: str = Field(default="default", max_length=200)
    type: RoutingKey = "default"
    action: ActionTypes | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    stats: QueueMessageStats = Field(default_factory=QueueMessageStats)
    correlation_id: str | None = Field(default=None, max_length=200)
    reply_to: str | None = Field(default=None, max_length=200)
    headers: dict[str, str] = Field(default_factory=dict)

    def encode(self) -> bytes:
        """The message as UTF-8 JSON, ready for the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> QueueMessage:
        """Parse a message from the wire; raise `MessageDecodeError` naming the bad field."""
        body = raw.encode() if isinstance(raw, str) else bytes(raw)
        try:
            message = cls.model_validate_json(body)
        except ValidationError as exc:
            raise decode_error_from(exc, body) from exc
        if message.schema_version > SCHEMA_VERSION:
            raise MessageDecodeError(
                f"schema version {message.schema_version} is newer than the supported "
                f"version {SCHEMA_VERSION}; upgrade llama-agents on this consumer",
                raw=body,
                field="schema_version",
            )
        return message


def decode_error_from(exc: ValidationError, raw: bytes) -> MessageDecodeError:
    """Turn a pydantic validation error into the library's decode error, naming the field."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or None
    if first.get("type") == "json_invalid":
        field = None
    return MessageDecodeError(first.get("msg", str(exc)), raw=raw, field=field)
