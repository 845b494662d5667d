"""One embedded backend with four slots for the batching and sampling tests (the real
packaged Gemma 3 270M, a base model; short contexts keep its KV memory small)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

pytest.importorskip("llama_cpp")

from lmstream.backends.base import BackendContext
from lmstream.backends.llama_cpp import LlamaCppBackend
from lmstream.events import Event, TextDelta, TokenLogprob
from lmstream.settings import ModelConfig, Settings

SLOTS = 4
N_BATCH = 32


@pytest.fixture(scope="package")
def batched() -> Iterator[LlamaCppBackend]:
    # One thread: on a busy machine llama.cpp's threads spin at their barriers and two of
    # them on two shared cores run ~10x slower than one (measured); answers are the same.
    settings = Settings(n_ctx=1024, n_batch=N_BATCH, n_parallel=SLOTS, queue_size=2, n_threads=1)
    http = httpx.AsyncClient()
    model = LlamaCppBackend(ModelConfig(name="gemma3-270m"), BackendContext(settings=settings, http=http))
    asyncio.run(model.start())
    yield model
    asyncio.run(model.aclose())
    asyncio.run(http.aclose())


def logprobs_of(events: list[Event]) -> list[TokenLogprob]:
    """The answer's per-token log-probabilities, as its deltas carried them."""
    return [entry for e in events if isinstance(e, TextDelta) for entry in e.logprobs or ()]


@contextmanager
def unpadded(backend: LlamaCppBackend) -> Iterator[None]:
    """Three generating sequences decoded row by row, exactly as each alone: no throwaway
    fourth row (``pad_batches``), whose 4-row tiles round differently."""
    engine = backend._engine
    assert engine is not None
    before, engine.pad_rows = engine.pad_rows, False
    try:
        yield
    finally:
        engine.pad_rows = before
