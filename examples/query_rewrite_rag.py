"""Pipeline orchestrator for query-rewrite RAG: rewrite the question, retrieve, answer.

Three steps, each a service or a function:

1. `query_rewriter`, a `ComponentService` serving a function, rewrites the question into
   the words the documents use ("newborn" -> "cria birth", "heavy" -> "weigh");
2. `retriever`, a `ComponentService` serving a BM25 retriever (real keyword retrieval, no
   embedding model) over a few short documents about llamas and alpacas;
3. a `FunctionStep` turns the retrieved passage into the answer.

Asked as written, BM25 would find the wrong passage; the rewrite makes it find the right one.
With a real LLM you would serve the LLM itself (or a prompt template) as the rewriter.

Run it:

    .venv/bin/python examples/query_rewrite_rag.py

It needs no API key and no LLM at all.
"""

from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter
from llama_index.retrievers.bm25 import BM25Retriever

from llama_agents import (
    ComponentService,
    ControlPlaneServer,
    FunctionStep,
    LocalLauncher,
    Pipeline,
    PipelineOrchestrator,
    ServiceComponent,
    SimpleMessageQueue,
)

DOCUMENTS = [
    "Llamas are domesticated South American camelids, long used as pack animals by the "
    "Andean peoples. A llama can carry 25 to 30 percent of its body weight for 8 to 13 km.",
    "Alpacas are smaller than llamas and are bred for their fleece, not for carrying loads. "
    "Alpaca fleece is soft, warm and contains no lanolin.",
    "A baby llama or alpaca is called a cria. A cria weighs about 8 kilograms at birth.",
]

SYNONYMS = {"newborn": "cria birth", "heavy": "weigh", "young": "cria"}


def rewrite_query(question: str) -> str:
    """Replace everyday words by the words the documents use."""
    words = question.lower().rstrip("?").split()
    return " ".join(SYNONYMS.get(word, word) for word in words)


def answer(passages: str) -> str:
    return f"According to the documents: {passages}"


nodes = SentenceSplitter(chunk_size=128, chunk_overlap=0).get_nodes_from_documents(
    [Document(text=text) for text in DOCUMENTS]
)
message_queue = SimpleMessageQueue()
rewriter = ComponentService(
    rewrite_query,
    message_queue,
    description="Rewrites a question into the words of the documents.",
    service_name="query_rewriter",
)
retriever = ComponentService(
    BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=1),
    message_queue,
    description="Finds the passage about llamas and alpacas that best matches a query.",
    service_name="retriever",
)

pipeline = Pipeline.sequence(
    ServiceComponent.from_service(rewriter),
    ServiceComponent.from_service(retriever),
    FunctionStep(answer),
)
control_plane = ControlPlaneServer(message_queue, PipelineOrchestrator(pipeline))

launcher = LocalLauncher([rewriter, retriever], control_plane, message_queue)
result = launcher.launch_single("How heavy is a newborn alpaca?")
print(f"Result: {result}")
