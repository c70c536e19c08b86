"""Our chat message model writes and reads the JSON llama-index's `ChatMessage` does.

Payloads hold `llama_agents.messages.ChatMessage` (so reading them needs no llama-index);
they accept llama-index messages, and turn back into them without losing a field.
"""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import (
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms import ChatMessage as LlamaIndexChatMessage
from llama_index.core.llms import MessageRole as LlamaIndexRole

from llama_agents.messages import (
    ChatMessage,
    MessageRole,
    QueueMessage,
    ServiceDefinition,
    TaskResult,
    ToolCallResult,
)
from llama_agents.messages.chat import to_llama_index

LLAMA_INDEX_MESSAGES = [
    LlamaIndexChatMessage(role="system", content="Be brief."),
    LlamaIndexChatMessage(role="user", content="hi", additional_kwargs={"n": 1, "k": ["a"]}),
    LlamaIndexChatMessage(role="assistant", content=None),
    LlamaIndexChatMessage(
        role="assistant",
        blocks=[
            ThinkingBlock(content="the tool knows"),
            ToolCallBlock(tool_call_id="c1", tool_name="get_fact", tool_kwargs={"topic": "llamas"}),
        ],
    ),
    LlamaIndexChatMessage(
        role=LlamaIndexRole.TOOL,
        content="A baby llama is a cria.",
        additional_kwargs={"tool_call_id": "c1", "name": "get_fact"},
    ),
    LlamaIndexChatMessage(
        role="user",
        blocks=[
            TextBlock(text="first"),
            ImageBlock(image=b"\x89PNG", image_mimetype="image/png"),
            TextBlock(text="second"),
            DocumentBlock(data=b"%PDF", document_mimetype="application/pdf", title="doc"),
        ],
    ),
]


@pytest.mark.parametrize("original", LLAMA_INDEX_MESSAGES, ids=lambda m: m.role.value)
def test_the_json_is_llama_indexs_both_ways(original: LlamaIndexChatMessage) -> None:
    ours = ChatMessage.model_validate(original)
    assert ours.model_dump(mode="json") == original.model_dump(mode="json")
    assert ours.model_dump_json() == original.model_dump_json()
    assert ours.to_llama_index() == original
    # From JSON, as a consumer reads it off the wire.
    assert ChatMessage.model_validate_json(original.model_dump_json()) == ours
    assert LlamaIndexChatMessage.model_validate_json(ours.model_dump_json()) == original
    # What code reads from a message means the same.
    assert ours.content == original.content
    assert str(ours) == str(original)
    assert ours.role == original.role


def test_it_is_built_like_llama_indexs() -> None:
    assert ChatMessage(role="user", content="hi") == ChatMessage.model_validate(
        {"role": "user", "blocks": [{"block_type": "text", "text": "hi"}]}
    )
    assert ChatMessage(content=[TextBlock(text="a"), TextBlock(text="b")]).content == "a\nb"
    assert ChatMessage(role=MessageRole.TOOL, content="x").role is MessageRole.TOOL
    assert ChatMessage().content is None
    with pytest.raises(ValueError):
        ChatMessage(role="nobody", content="x")


def test_payloads_take_llama_index_messages_and_hold_ours() -> None:
    history = LLAMA_INDEX_MESSAGES[:2]
    result = TaskResult(task_id="t", result="r", history=history)
    definition = ServiceDefinition(service_name="s", description="d", prompt=history)
    call = ToolCallResult(id_="1", tool_message=LLAMA_INDEX_MESSAGES[4], result="ok")

    assert all(isinstance(m, ChatMessage) for m in [*result.history, *definition.prompt])
    assert isinstance(call.tool_message, ChatMessage)
    assert to_llama_index(result.history) == history
    assert call.tool_message.to_llama_index() == LLAMA_INDEX_MESSAGES[4]

    # On the wire: the same bytes as when the payloads held llama-index messages.
    wire = QueueMessage(type="x", data=result.model_dump(mode="json")).encode()
    expected = [m.model_dump(mode="json") for m in history]
    assert QueueMessage.decode(wire).data["history"] == expected
    assert TaskResult.from_data(QueueMessage.decode(wire).data) == result


def test_provider_objects_in_additional_kwargs_are_kept_as_json() -> None:
    """OpenAI's client puts its own models (tool calls) in `additional_kwargs`."""
    original = LlamaIndexChatMessage(
        role="assistant", content="", additional_kwargs={"tool_calls": [TextBlock(text="t")]}
    )
    ours = ChatMessage.model_validate(original)
    assert ours.additional_kwargs == {"tool_calls": [{"block_type": "text", "text": "t"}]}
    direct = ChatMessage(role="assistant", additional_kwargs={"calls": [TextBlock(text="t")]})
    assert direct.additional_kwargs == {"calls": [{"block_type": "text", "text": "t"}]}
