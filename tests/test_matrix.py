"""Every dialect by every backend: the same text, usage and finish reason.

Backends: the scripted model in-process; each upstream kind (``openai``, ``ollama``,
``anthropic``) against a real upstream on loopback, a second lmstream process serving
the same scripted model (it speaks all three formats); and the embedded llama.cpp model
(``-m embedded``). The front lmstream runs in-process, all upstreams configured at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from lmstream.settings import ModelConfig, Settings
from tests.dialects.wire import DIALECTS, Answer, ask
from tests.support import LiveServer, app_client, scripted, start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXT = "Grüße aus dem Matrix-Test 🎉, Wort für Wort gestreamt."
TOKENS = 9  # scripted tokens: words with their trailing spaces
SYSTEM = "Answer in one line."
PROMPT = "Say the line."
PROMPT_TOKENS = (4 + 3) + (3 + 3)  # scripted: words + 3 per message, system and user
UPSTREAM_KINDS = ("openai", "ollama", "anthropic")
BACKENDS = ("scripted", *UPSTREAM_KINDS)

# Internal finish reason → each dialect's word for it.
FINISH = {
    "native": {"stop": "stop", "length": "length", "stop_sequence": "stop_sequence"},
    "openai": {"stop": "stop", "length": "length", "stop_sequence": "stop"},
    "anthropic": {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"},
    "ollama": {"stop": "stop", "length": "length", "stop_sequence": "stop"},
}
# The OpenAI and Ollama formats do not say that a stop sequence ended the answer.
STOP_SEQUENCE_SEEN_AS = {"scripted": "stop_sequence", "anthropic": "stop_sequence", "openai": "stop", "ollama": "stop"}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("upstream"), [scripted("s", text=TEXT)])
    try:
        yield server
    finally:
        server.stop()


def model_name(backend: str) -> str:
    return backend if backend == "scripted" else f"via-{backend}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def front(upstream: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    models = [scripted("scripted", text=TEXT, aliases=["local"])]
    models += [
        ModelConfig(name=model_name(kind), backend=kind, url=upstream.url, upstream_model="s", aliases=[f"{kind}-alias"])
        for kind in UPSTREAM_KINDS
    ]
    settings = Settings(models=models, data_dir=tmp_path_factory.mktemp("front"))
    async with app_client(settings) as client:
        yield client


def check(answer: Answer, dialect: str, *, text: str, finish: str, completion_tokens: int) -> None:
    assert answer.status == 200 and answer.error is None, answer
    assert answer.text == text
    assert answer.finish == FINISH[dialect][finish]
    assert (answer.prompt_tokens, answer.completion_tokens) == (PROMPT_TOKENS, completion_tokens)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_same_answer(front: httpx.AsyncClient, dialect: str, backend: str, stream: bool) -> None:
    model = model_name(backend)

    full = await ask(front, dialect, model, PROMPT, system=SYSTEM, stream=stream)
    check(full, dialect, text=TEXT, finish="stop", completion_tokens=TOKENS)

    short = await ask(front, dialect, model, PROMPT, system=SYSTEM, stream=stream, max_tokens=3)
    check(short, dialect, text="Grüße aus dem ", finish="length", completion_tokens=3)

    stopped = await ask(front, dialect, model, PROMPT, system=SYSTEM, stream=stream, stop=["Wort"])
    check(stopped, dialect, text="Grüße aus dem Matrix-Test 🎉, ", finish=STOP_SEQUENCE_SEEN_AS[backend], completion_tokens=6)
    if dialect in ("native", "anthropic") and STOP_SEQUENCE_SEEN_AS[backend] == "stop_sequence":
        assert stopped.stop_sequence == "Wort"


async def test_every_routable_model_is_listed(front: httpx.AsyncClient) -> None:
    expected = {"scripted", "local"} | {n for k in UPSTREAM_KINDS for n in (model_name(k), f"{k}-alias")}
    openai_ids = {m["id"] for m in (await front.get("/v1/models")).json()["data"]}
    ollama_names = {m["name"] for m in (await front.get("/api/tags")).json()["models"]}
    assert expected <= openai_ids and expected <= ollama_names


async def test_aliases_route_to_their_upstream(front: httpx.AsyncClient) -> None:
    answer = await ask(front, "ollama", "anthropic-alias", PROMPT, system=SYSTEM, stream=False, max_tokens=1)
    assert answer.text == "Grüße " and answer.frames[0]["model"] == "anthropic-alias"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_unknown_model_is_a_404_in_the_dialects_shape(front: httpx.AsyncClient, dialect: str) -> None:
    answer = await ask(front, dialect, "no-such-model", PROMPT)
    assert answer.status == 404 and "no-such-model" in (answer.error or "")
    body = answer.error_body
    if dialect == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    elif dialect == "ollama":
        assert set(body) == {"error"} and isinstance(body["error"], str)
    else:
        assert body["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("kind", UPSTREAM_KINDS)
async def test_unknown_upstream_model_keeps_the_upstreams_message(
    tmp_path: Path, upstream: LiveServer, kind: str
) -> None:
    models = [ModelConfig(name="m", backend=kind, url=upstream.url, upstream_model="missing")]
    async with app_client(Settings(models=models, data_dir=tmp_path)) as client:
        answer = await ask(client, "openai", "m", PROMPT)
    assert answer.status == 404 and "'missing' not found" in (answer.error or ""), answer


# The embedded model ------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def embedded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        models=[ModelConfig(name="gemma", backend="llama_cpp")], n_threads=2, n_ctx=1024,
        data_dir=tmp_path_factory.mktemp("embedded"),
    )
    async with app_client(settings) as client:
        yield client


@pytest.mark.embedded
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_embedded_model_same_answer_in_every_dialect(embedded: httpx.AsyncClient, stream: bool) -> None:
    answers = {
        dialect: await ask(embedded, dialect, "gemma", "Count from one to thirty, in words.", system=SYSTEM, stream=stream,
                           max_tokens=8, temperature=0)
        for dialect in DIALECTS
    }
    reference = answers["native"]
    assert reference.error is None and reference.text.strip(), reference
    for dialect, answer in answers.items():
        assert answer.status == 200 and answer.error is None, (dialect, answer)
        assert answer.text == reference.text, dialect
        assert answer.finish == FINISH[dialect][reference.finish or ""], dialect
        assert (answer.prompt_tokens, answer.completion_tokens) == (reference.prompt_tokens, reference.completion_tokens)
    assert reference.finish == "length" and reference.completion_tokens == 8
