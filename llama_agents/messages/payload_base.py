"""The base of every payload carried in `QueueMessage.data`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from llama_agents.errors import MessageDecodeError
from llama_agents.messages.envelope import decode_error_from


class Payload(BaseModel):
    """Base of all payloads: validated from a message's `data` with the library's error type."""

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Any:
        """Validate a message's `data` as this payload; raise `MessageDecodeError` if it is not."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raw = repr(data).encode(errors="replace")
            error = decode_error_from(exc, raw)
            raise MessageDecodeError(
                f"{cls.__name__}: {error.reason}", raw=raw, field=error.field
            ) from exc
