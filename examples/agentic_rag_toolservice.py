"""Agentic RAG with its retrieval tool in a tool service.

A few short documents about llamas and alpacas are split into nodes and indexed by a BM25
retriever (real keyword retrieval, no embedding model). The search function runs in a
`ToolService`; the agent holds only a `MetaServiceTool`, so every search travels over the
message queue to the tool service and back. An `AgentOrchestrator` routes the question to
the agent and `LocalLauncher` runs one task on the embedded queue.

Run it:

    .venv/bin/python examples/agentic_rag_toolservice.py

It needs no API key: the offline LLM picks the search tool because its description shares
words with the question, and answers with the retrieved passage. Set OPENAI_API_KEY (or
LLAMA_AGENTS_LLM_BASE_URL) to let a real model write the answer from it.
"""

import asyncio

from llama_index.core import Document
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.tools import FunctionTool
from llama_index.retrievers.bm25 import BM25Retriever

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    ControlPlaneServer,
    LocalLauncher,
    MetaServiceTool,
    SimpleMessageQueue,
    ToolService,
)
from llama_agents.llms import default_llm

DOCUMENTS = [
    "Llamas are domesticated South American camelids, long used as pack animals by the "
    "Andean peoples. A llama can carry 25 to 30 percent of its body weight for 8 to 13 km.",
    "Alpacas are smaller than llamas and are bred for their fleece, not for carrying loads. "
    "Alpaca fleece is soft, warm and contains no lanolin.",
    "A baby llama or alpaca is called a cria. A cria weighs about 8 kilograms at birth.",
]

nodes = SentenceSplitter(chunk_size=128, chunk_overlap=0).get_nodes_from_documents(
    [Document(text=text) for text in DOCUMENTS]
)
retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=1)


def search_llama_documents(query: str) -> str:
    """Searches the documents about llamas and alpacas for passages answering the query."""
    return "\n".join(node.get_content() for node in retriever.retrieve(query))


async def main() -> None:
    message_queue = SimpleMessageQueue()
    tool_service = ToolService(
        tools=[FunctionTool.from_defaults(fn=search_llama_documents)],
        message_queue=message_queue,
        service_name="llama_docs_tools",
    )
    search = await MetaServiceTool.from_tool_service(
        "search_llama_documents", message_queue, tool_service=tool_service
    )
    rag_agent = AgentService(
        agent=FunctionAgent(tools=[search], llm=default_llm()),
        message_queue=message_queue,
        description="Answers questions about llamas and alpacas from the documents.",
        service_name="llama_docs_agent",
    )
    control_plane = ControlPlaneServer(message_queue, AgentOrchestrator(llm=default_llm()))

    launcher = LocalLauncher([rag_agent, tool_service], control_plane, message_queue)
    result = await launcher.alaunch_single("How much weight can a llama carry?")
    print(f"Result: {result}")


if __name__ == "__main__":
    asyncio.run(main())
