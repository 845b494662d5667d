"""Retrieval quality on a real corpus: recall@5 and MRR per retrieval mode.

The corpus is the Python 3.11 documentation that Debian's ``python3.11-doc`` installs
(HTML); the questions (``bench/rag_questions.py``) each name the one page that answers
them. A question is answered at rank r when the r-th retrieved chunk comes from that
page; recall@5 counts ranks ≤ 5, MRR averages 1/r over the first 10 (0 when absent).

    .venv/bin/python -m bench.rag_quality                           # lexical, dense, hybrid (MiniLM)
    .venv/bin/python -m bench.rag_quality --distractors 80          # a smaller corpus: quicker
    .venv/bin/python -m bench.rag_quality --embedder none           # lexical only, no model
    .venv/bin/python -m bench.rag_quality --embedder hashing        # the plumbing without a model

It ingests through lmstream's own ``Ingestor`` into a fresh SQLite index in a temporary
directory (the embedder computes every chunk's vector: with MiniLM on 2 cores that is
most of the run), then asks every question in every mode. Results go to
``bench/results/rag_quality.json`` (``--out``). Not a timed test: the figures are
rates and ranks, meant for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.rag_questions import QUESTIONS
from lmstream.rag.embedders import build_embedder
from lmstream.rag.ingest import Ingestor
from lmstream.rag.retrieval import DenseRetriever, HybridRetriever, LexicalRetriever, VectorCache
from lmstream.rag.sqlite_index import SQLiteIndex
from lmstream.settings import EmbeddingModelConfig

DOCS = Path("/usr/share/doc/python3.11/html")
RESULTS = Path(__file__).parent / "results"


def corpus(root: Path, distractors: int | None, seed: int) -> list[Path]:
    targets = {root / page for _, page in QUESTIONS}
    missing = [p for p in targets if not p.exists()]
    if missing:
        raise SystemExit(f"missing {missing[0]}: apt-get install python3.11-doc")
    others = sorted(p for p in (root / "library").glob("*.html") if p not in targets)
    if distractors is not None:
        others = random.Random(seed).sample(others, min(distractors, len(others)))
    return sorted(targets) + others


async def run(args: argparse.Namespace) -> dict[str, Any]:
    files = corpus(args.docs, args.distractors, args.seed)
    with tempfile.TemporaryDirectory(prefix="rag-quality-") as tmp:
        index = SQLiteIndex(Path(tmp) / "lmstream.db")
        await index.open()
        http = httpx.AsyncClient()
        embedder = None
        if args.embedder != "none":
            embedder = build_embedder(EmbeddingModelConfig(name=args.embedder, kind=args.embedder, options={"threads": args.threads}), http)
        ingestor = Ingestor(index, embedder)
        collection = await index.create_collection("pydocs")
        started, size = time.perf_counter(), 0
        for path in files:
            data = path.read_bytes()
            size += len(data)
            await ingestor.add_file(collection, data, filename=path.name, source=str(path.relative_to(args.docs)))
        ingest_s = time.perf_counter() - started
        collection = await index.get_collection("pydocs")
        assert collection is not None
        print(f"ingested {len(files)} pages, {collection.chunk_count} chunks, {size / 1e6:.1f} MB in {ingest_s:.1f} s"
              f" (embedder: {args.embedder})")
        retrievers: dict[str, Any] = {"lexical": LexicalRetriever(index)}
        if embedder is not None:
            dense = DenseRetriever(index, embedder, VectorCache())
            retrievers["dense"] = dense
            retrievers["hybrid"] = HybridRetriever([retrievers["lexical"], dense])
        rows: dict[str, Any] = {}
        for mode, retriever in retrievers.items():
            ranks: list[int | None] = []
            misses: list[str] = []
            t0 = time.perf_counter()
            for question, page in QUESTIONS:
                hits = await retriever.retrieve(collection, question, 10)
                rank = next((i for i, h in enumerate(hits, start=1) if h.chunk.source == page), None)
                ranks.append(rank)
                if rank is None or rank > 5:
                    misses.append(f"{question} → {page} (rank {rank})")
            elapsed = time.perf_counter() - t0
            recall = sum(1 for r in ranks if r is not None and r <= 5) / len(ranks)
            mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
            rows[mode] = {
                "recall@5": round(recall, 3), "mrr@10": round(mrr, 3),
                "ms_per_query": round(1000 * elapsed / len(QUESTIONS), 2), "misses": misses,
            }
            print(f"{mode:8s} recall@5 {recall:.3f}  MRR@10 {mrr:.3f}  {1000 * elapsed / len(QUESTIONS):7.1f} ms/query")
        if embedder is not None:
            await embedder.aclose()
        ingestor.close()
        await http.aclose()
        await index.aclose()
    return {
        "corpus": {"pages": len(files), "chunks": collection.chunk_count, "mb": round(size / 1e6, 2),
                   "distractors": args.distractors, "seed": args.seed},
        "questions": len(QUESTIONS),
        "embedder": args.embedder,
        "ingest_seconds": round(ingest_s, 1),
        "modes": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--distractors", type=int, default=None, help="other library pages (default: all of them)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--embedder", default="minilm", help="minilm, hashing, llama_cpp or none")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "rag_quality.json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
