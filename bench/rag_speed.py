"""Ingestion rate, search latency at 10k and 100k chunks, memory.

    .venv/bin/python -m bench.rag_speed                     # ingest + 10k + 100k
    .venv/bin/python -m bench.rag_speed --sizes 10000       # quicker

* **ingest** — every HTML page of the Python 3.11 docs (Debian's ``python3.11-doc``)
  through ``Ingestor`` into a fresh SQLite index, lexical only: documents, MB and chunks
  per second; then a sample through the packaged MiniLM embedder (the embedding-bound
  rate of dense indexing).
* **search** — the index filled to N chunks with real pages (copies with distinct
  content past one pass), each chunk with a random 384-dimension unit vector (dense
  search costs the same for any vector; embedding 100k chunks with MiniLM would take
  hours on 2 cores); the 55 benchmark questions, repeated, in each mode: p50/p99 of the
  retrieval alone. The query's own embedding (MiniLM) is timed separately and belongs
  on top of dense and hybrid.
* **memory** — the process's RSS before and after the 100k vectors are loaded, and the
  database's size on disk.

Writes ``bench/results/rag_speed.json`` (``--out``). The machine is shared while helpers
work: compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.rag_questions import QUESTIONS
from lmstream.rag.base import EmbedKind, Vectors
from lmstream.rag.embedders import build_embedder
from lmstream.rag.ingest import Ingestor
from lmstream.rag.retrieval import DenseRetriever, HybridRetriever, LexicalRetriever, VectorCache
from lmstream.rag.sqlite_index import SQLiteIndex
from lmstream.settings import EmbeddingModelConfig

DOCS = Path("/usr/share/doc/python3.11/html")
RESULTS = Path(__file__).parent / "results"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RandomEmbedder:
    """Unit vectors at random: the cost of dense search without the cost of a model."""

    model = "random-384"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    async def embed(self, texts: Sequence[str], kind: EmbedKind = "document") -> Vectors:
        v = self.rng.standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    async def aclose(self) -> None:
        return None


async def ingest_rate(pages: list[Path], tmp: Path, embed_sample: int) -> dict[str, Any]:
    index = SQLiteIndex(tmp / "ingest.db")
    await index.open()
    ingestor = Ingestor(index)
    collection = await index.create_collection("pydocs")
    data = [p.read_bytes() for p in pages]
    started = time.perf_counter()
    for path, body in zip(pages, data, strict=True):
        await ingestor.add_file(collection, body, filename=path.name, source=str(path))
    elapsed = time.perf_counter() - started
    info = await index.get_collection("pydocs")
    assert info is not None
    mb = sum(map(len, data)) / 1e6
    result: dict[str, Any] = {
        "documents": len(pages), "mb": round(mb, 1), "chunks": info.chunk_count, "seconds": round(elapsed, 2),
        "docs_per_s": round(len(pages) / elapsed, 1), "mb_per_s": round(mb / elapsed, 2),
        "chunks_per_s": round(info.chunk_count / elapsed, 0),
    }
    started = time.perf_counter()
    for path, body in zip(pages, data, strict=True):
        await ingestor.add_file(collection, body, filename=path.name, source=str(path))
    result["unchanged_docs_per_s"] = round(len(pages) / (time.perf_counter() - started), 0)
    print(f"ingest (lexical): {len(pages)} docs, {mb:.1f} MB, {info.chunk_count} chunks in {elapsed:.1f} s: "
          f"{result['docs_per_s']} docs/s, {result['mb_per_s']} MB/s; unchanged re-add {result['unchanged_docs_per_s']} docs/s")
    ingestor.close()
    await index.aclose()
    if embed_sample:
        http = httpx.AsyncClient()
        embedder = build_embedder(EmbeddingModelConfig(name="minilm", kind="minilm", options={"threads": 2}), http)
        index = SQLiteIndex(tmp / "ingest-dense.db")
        await index.open()
        ingestor = Ingestor(index, embedder)
        collection = await index.create_collection("pydocs")
        await embedder.embed(["warm up"])
        sample = pages[:embed_sample]
        started = time.perf_counter()
        for path in sample:
            await ingestor.add_file(collection, path.read_bytes(), filename=path.name, source=str(path))
        elapsed = time.perf_counter() - started
        info = await index.get_collection("pydocs")
        assert info is not None
        result["minilm"] = {"documents": len(sample), "chunks": info.chunk_count, "seconds": round(elapsed, 1),
                            "chunks_per_s": round(info.chunk_count / elapsed, 1)}
        print(f"ingest (MiniLM): {len(sample)} docs, {info.chunk_count} chunks in {elapsed:.1f} s: "
              f"{result['minilm']['chunks_per_s']} chunks/s")
        query_ms = []
        for question, _ in QUESTIONS:
            t0 = time.perf_counter()
            await embedder.embed([question], "query")
            query_ms.append(1000 * (time.perf_counter() - t0))
        result["minilm"]["query_embed_ms_p50"] = round(percentile(query_ms, 0.5), 2)
        result["minilm"]["query_embed_ms_p99"] = round(percentile(query_ms, 0.99), 2)
        print(f"query embedding (MiniLM): p50 {result['minilm']['query_embed_ms_p50']} ms, p99 {result['minilm']['query_embed_ms_p99']} ms")
        ingestor.close()
        await embedder.aclose()
        await index.aclose()
        await http.aclose()
    return result


async def search_latency(pages: list[Path], tmp: Path, size: int, repeats: int) -> dict[str, Any]:
    path = tmp / f"search-{size}.db"
    index = SQLiteIndex(path)
    await index.open()
    embedder = RandomEmbedder()
    ingestor = Ingestor(index, embedder)
    collection = await index.create_collection("big")
    copy = 0
    while collection.chunk_count < size:
        for page in pages:
            body = page.read_bytes() + (f"<!-- copy {copy} -->".encode() if copy else b"")
            await ingestor.add_file(collection, body, filename=page.name, source=f"{copy}/{page}")
            info = await index.get_collection("big")
            assert info is not None
            collection = info
            if collection.chunk_count >= size:
                break
        copy += 1
    rss_before = rss_mb()
    cache = VectorCache()
    t0 = time.perf_counter()
    vectors = await cache.get(index, collection, embedder.model)
    load_s = time.perf_counter() - t0
    rss_after = rss_mb()
    lexical = LexicalRetriever(index)
    dense = DenseRetriever(index, embedder, cache)
    modes = {"lexical": lexical, "dense": dense, "hybrid": HybridRetriever([lexical, dense])}
    result: dict[str, Any] = {
        "chunks": collection.chunk_count, "db_mb": round(path.stat().st_size / 1e6, 1),
        "vector_load_s": round(load_s, 2), "rss_mb_before_vectors": round(rss_before), "rss_mb_after_vectors": round(rss_after),
        "vectors_mb": round(vectors.matrix.nbytes / 1e6, 1),
    }
    for mode, retriever in modes.items():
        timings = []
        for _ in range(repeats):
            for question, _page in QUESTIONS:
                t = time.perf_counter()
                await retriever.retrieve(collection, question, 5)
                timings.append(1000 * (time.perf_counter() - t))
        result[mode] = {"p50_ms": round(percentile(timings, 0.5), 2), "p99_ms": round(percentile(timings, 0.99), 2),
                        "queries": len(timings)}
    print(f"search at {collection.chunk_count} chunks (db {result['db_mb']} MB, vectors {result['vectors_mb']} MB, "
          f"RSS {rss_before:.0f} → {rss_after:.0f} MB, load {load_s:.2f} s): "
          + ", ".join(f"{m} p50 {result[m]['p50_ms']} / p99 {result[m]['p99_ms']} ms" for m in modes))
    ingestor.close()
    await index.aclose()
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pages = sorted(args.docs.rglob("*.html"))
    if not pages:
        raise SystemExit(f"no HTML under {args.docs}: apt-get install python3.11-doc")
    with tempfile.TemporaryDirectory(prefix="rag-speed-") as tmp:
        result: dict[str, Any] = {"ingest": await ingest_rate(pages, Path(tmp), args.embed_sample)}
        result["search"] = [await search_latency(pages, Path(tmp), size, args.repeats) for size in args.sizes]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=2, help="passes over the questions per mode")
    parser.add_argument("--embed-sample", type=int, default=10, help="pages embedded with MiniLM (0: skip)")
    parser.add_argument("--out", type=Path, default=RESULTS / "rag_speed.json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
