"""Chat messages as payloads carry them, without importing llama-index.

The SDK and the CLI read chat histories (`TaskResult.history`, `ServiceDefinition.prompt`)
but never run a model; importing llama-index's `ChatMessage` would load all of
`llama_index.core` just to parse them. This model has the same JSON shape as llama-index's
(`role`, `additional_kwargs`, `blocks`), takes a llama-index `ChatMessage` wherever one is
given, and turns back into one (`to_llama_index()`) where a model is to be called.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator, model_validator

if TYPE_CHECKING:
    from llama_index.core.llms import ChatMessage as LlamaIndexChatMessage

#: The `block_type` of a text block, the only kind this model reads.
TEXT_BLOCK = "text"


class MessageRole(StrEnum):
    """Who wrote a message; the same values as llama-index's `MessageRole` (and equal to them)."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    FUNCTION = "function"
    TOOL = "tool"
    CHATBOT = "chatbot"
    MODEL = "model"


def _as_json(value: Any) -> Any:
    """A pydantic model from another library (llama-index's) as the JSON it dumps."""
    if isinstance(value, BaseModel) and not isinstance(value, ChatMessage):
        return value.model_dump(mode="json")
    return value


def _nested_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _nested_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_nested_json(item) for item in value]
    return _as_json(value)


class ChatMessage(BaseModel):
    """One message of a chat, as JSON-ready data.

    `blocks` are kept as the JSON objects llama-index writes (`{"block_type": "text",
    "text": ...}`, images, tool calls, ...), so every kind of block round-trips unchanged.
    `content` is the text of the text blocks, as in llama-index.
    """

    role: MessageRole = MessageRole.USER
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)
    blocks: list[dict[str, Any]] = Field(default_factory=list)

    def __init__(self, /, content: str | list[Any] | None = None, **data: Any) -> None:
        # llama-index's constructor takes `content=`: a string, or a list of blocks.
        if content is not None:
            data["content"] = content
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _accept_llama_index(cls, value: Any) -> Any:
        value = _as_json(value)
        if isinstance(value, dict) and "content" in value:
            data = dict(value)
            content = data.pop("content")
            if isinstance(content, str):
                data["blocks"] = [{"block_type": TEXT_BLOCK, "text": content}]
            elif isinstance(content, list):
                data["blocks"] = content
            return data
        return value

    @field_validator("blocks", mode="before")
    @classmethod
    def _blocks_as_json(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_as_json(block) for block in value]
        return value

    @field_validator("additional_kwargs", mode="before")
    @classmethod
    def _kwargs_as_json(cls, value: Any) -> Any:
        # Providers put their own models here (an OpenAI tool call, say): keep their JSON.
        return _nested_json(value) if isinstance(value, dict) else value

    @property
    def content(self) -> str | None:
        """The text of the message's text blocks (joined by newlines); None if it has none."""
        texts = [
            str(block.get("text", ""))
            for block in self.blocks
            if block.get("block_type") == TEXT_BLOCK
        ]
        return "\n".join(texts) if texts else None

    def __str__(self) -> str:
        return f"{self.role.value}: {self.content}"

    def to_llama_index(self) -> LlamaIndexChatMessage:
        """The same message as llama-index's `ChatMessage`, to hand to an LLM or an agent."""
        from llama_index.core.llms import ChatMessage as LlamaIndexChatMessage

        return LlamaIndexChatMessage.model_validate(self.model_dump(mode="json"))


def to_llama_index(messages: list[ChatMessage]) -> list[LlamaIndexChatMessage]:
    """A history (or a prompt) as llama-index messages."""
    return [message.to_llama_index() for message in messages]
