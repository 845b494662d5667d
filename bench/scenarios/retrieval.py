"""Scenario: the time the retrieval step adds to the first token.

One collection of Python 3.11 library pages (Debian's ``python3.11-doc``; the pages the
questions of ``bench/rag_questions.py`` are about, plus others), uploaded through the
REST API. Two servers share its database:

* ``lexical``: no embedding model (FTS5/BM25 only), the ``scripted`` model;
* ``hybrid``: the packaged MiniLM embedder (lexical + dense, RRF), the ``scripted``
  model and the embedded Gemma 3 270M.

Each target asks native ``/v1/streams`` questions one at a time, a different question
each time, alternating *without* and *with* ``"collection": "pydocs"`` ``rounds`` times.
With ``scripted`` (which answers at once, whatever the prompt) the difference is
lmstream's own cost: the planner's lookup, the search, the ``progress``/``sources``
events, the prompt rebuilt. With Gemma it adds what users wait for on the embedded
model: reading the passages (``rag.context_tokens``, about 1,200 tokens) before the
first token. "Added" = the p50 with a collection minus the p50 without, same target,
same run.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.loadgen import LoadSpec, run_load
from bench.procs import running
from bench.rag_questions import QUESTIONS
from bench.report import pct, print_table
from bench.scenarios import Options
from bench.targets import start_lmstream

__all__ = ["NAME", "run"]

NAME = "retrieval"
TITLE = "Retrieval: the time the retrieval step adds to the first token"
DOCS = Path("/usr/share/doc/python3.11/html")
GEMMA = "gemma3-270m"
SCRIPTED = {"name": "scripted", "backend": "scripted", "options": {"text": "An answer [1]."}}


def _pages(quick: bool) -> list[Path]:
    questions = QUESTIONS[:10] if quick else QUESTIONS
    targets = sorted({DOCS / page for _, page in questions})
    if not all(p.exists() for p in targets):
        raise SystemExit(f"{DOCS} is missing: apt-get install python3.11-doc")
    others = sorted(p for p in (DOCS / "library").glob("*.html") if p not in targets)
    return targets + random.Random(11).sample(others, min(10 if quick else 100, len(others)))


def _ingest(url: str, pages: list[Path]) -> dict[str, Any]:
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600) as client:
        client.post("/v1/collections", json={"name": "pydocs"}).raise_for_status()
        for page in pages:
            files = {"file": (page.name, page.read_bytes())}
            client.post("/v1/collections/pydocs/documents", files=files, data={"source": str(page)}).raise_for_status()
        info = client.get("/v1/collections/pydocs").json()
    seconds = time.perf_counter() - started
    print(f"[retrieval] ingested {info['document_count']} pages, {info['chunk_count']} chunks in {seconds:.1f} s", flush=True)
    return {"pages": info["document_count"], "chunks": info["chunk_count"], "ingest_s": round(seconds, 1)}


def _body(question: str, model: str, collection: bool, max_tokens: int) -> str:
    body: dict[str, Any] = {"prompt": question, "model": model, "max_tokens": max_tokens, "store": False, "temperature": 0}
    if collection:
        body["collection"] = "pydocs"
    return orjson.dumps(body).decode()


def _ttfts(url: str, bodies: list[str]) -> tuple[list[float], list[str]]:
    port = int(url.rsplit(":", 1)[1])
    spec = LoadSpec(port=port, path="/v1/streams", body="", dialect="native", sequence=[(b, None) for b in bodies],
                    headers={"Accept": "text/event-stream"}, timeout_s=900, idle_timeout_s=300)  # fmt: skip
    result = run_load(spec)
    return [s.ttft for s in result.streams if s.ttft is not None], [s.error for s in result.streams if s.error]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def run(options: Options) -> dict[str, Any]:
    pages = _pages(options.quick)
    per_round = 4 if options.quick else 10
    gemma_per_round = 2 if options.quick else 4
    questions = [q for q, _ in QUESTIONS]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as data:
        common = {"data_dir": data, "fast_path": [], "conversation_titles": False}
        hybrid = start_lmstream(
            [SCRIPTED, {"name": GEMMA, "backend": "llama_cpp"}], name="lmstream-retrieval-hybrid", n_threads=2,
            rag={"embedder": "minilm"}, embedding_models=[{"name": "minilm", "kind": "minilm"}], **common,
        )  # fmt: skip
        with running([hybrid]):
            out["corpus"] = _ingest(hybrid.url, pages)
            lexical = start_lmstream([SCRIPTED], name="lmstream-retrieval-lexical", **common)
            with running([lexical]):
                targets = [
                    ("lexical", "scripted", lexical.url, per_round, 4),
                    ("hybrid (MiniLM)", "scripted", hybrid.url, per_round, 4),
                    ("hybrid, Gemma 3 270M", GEMMA, hybrid.url, gemma_per_round, 1),
                ]
                for _name, model, url, _, _ in targets:  # warm-up: models loaded, caches filled
                    _ttfts(url, [_body("What is a heap?", model, c, 1) for c in (False, True)])
                ttft: dict[str, dict[bool, list[float]]] = {name: {False: [], True: []} for name, *_ in targets}
                errors: list[str] = []
                asked = 0
                for _ in range(options.rounds):
                    for name, model, url, count, max_tokens in targets:
                        for collection in (False, True):
                            batch = [questions[(asked + i) % len(questions)] for i in range(count)]
                            got, failed = _ttfts(url, [_body(q, model, collection, max_tokens) for q in batch])
                            ttft[name][collection].extend(got)
                            errors.extend(failed)
                        asked += count
    rows = []
    out["targets"] = {}
    for name, *_ in targets:
        without, with_ = ttft[name][False], ttft[name][True]
        p50_without, p50_with = pct(without, 50), pct(with_, 50)
        added = None if p50_without is None or p50_with is None else p50_with - p50_without
        entry = {
            "requests": [len(without), len(with_)],
            "ttft_ms_p50_without": _ms(p50_without),
            "ttft_ms_p50_with": _ms(p50_with),
            "ttft_ms_p90_with": _ms(pct(with_, 90)),
            "added_ms_p50": _ms(added),
        }
        out["targets"][name] = entry
        rows.append([name, f"{len(without)} / {len(with_)}", entry["ttft_ms_p50_without"], entry["ttft_ms_p50_with"],
                     entry["ttft_ms_p90_with"], entry["added_ms_p50"]])  # fmt: skip
    out["errors"] = errors
    out["table"] = print_table(
        f"Retrieval step, TTFT ({out['corpus']['pages']} pages, {out['corpus']['chunks']} chunks)",
        ["target", "requests without / with", "TTFT p50 ms without", "p50 with", "p90 with", "added p50 ms"],
        rows,
    )
    return out
