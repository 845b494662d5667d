"""Structured output on the embedded model: grammar-constrained JSON against free text, and
lmstream against ``llama_cpp.server`` with the same schema.

Same GGUF (the packaged Gemma 3 270M), same llama-cpp-python build, 2 threads, greedy
decoding. Two parts:

* ``servers``: decode tokens/s (completion tokens - 1 over first-to-last token time)
  and TTFT of four targets, alternating: lmstream free text and lmstream JSON schema
  (``/v1/chat/completions``, ``response_format``), ``llama_cpp.server`` free text and
  JSON (``/v1/completions`` with lmstream's very transcript prompt and, for JSON, the
  very grammar lmstream compiles from the schema, passed as ``grammar``). Greedy
  decoding under the same grammar gives the same text, which is checked. The peer
  masks the whole vocabulary with the grammar at every step (llama-cpp-python's sampler
  chain); lmstream checks the token the model picks and masks only when it is rejected.
* ``sampler``: the same comparison without HTTP, in this process on one model: free
  greedy; lmstream's ``ConstrainedSampler`` (check the model's pick, on a rejection pick
  again among the most likely tokens the grammar allows); the same check with the
  whole vocabulary masked on a rejection (llama.cpp's server); a chain that masks
  every step (llama-cpp-python's server). The time
  spent choosing each token (sampling alone, the model's evaluation left out, so a busy
  machine disturbs it least) and in total, with the share of tokens the grammar
  rejected.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from bench.loadgen import LoadSpec, StreamRecord, run_load
from bench.procs import running
from bench.report import pct, print_table
from bench.scenarios import Options
from bench.targets import gguf_path, start_llama_server, start_lmstream

__all__ = ["NAME", "run"]

NAME = "structured"
TITLE = "Structured output (grammar-constrained JSON vs free text; lmstream vs llama_cpp.server)"
N_THREADS = 2
N_CTX = 2048
MODEL = "gemma3-270m"
MAX_TOKENS = 96
FREE_QUESTION = "{n}. Continue this sequence: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"
JSON_QUESTION = "{n}. Describe a person who works at a library."
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "job": {"enum": ["librarian", "archivist", "assistant", "director"]},
        "skills": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3},
        "full_time": {"type": "boolean"},
    },
    "required": ["name", "age", "job", "skills", "full_time"],
    "additionalProperties": False,
}
STOPS = ("\nUser:", "\nSystem:", "\nAssistant:", "\nTool:", "<end_of_turn>")


def _grammar() -> str:
    from lmstream.backends.sampling import json_grammar
    from lmstream.request import ResponseFormat

    return json_grammar(ResponseFormat("json_schema", SCHEMA))


def _transcript(question: str) -> str:
    from lmstream.prompt import transcript_prompt
    from lmstream.request import Message

    return transcript_prompt([Message("user", question)])


def _lm_body(question: str, structured: bool) -> str:
    body: dict[str, Any] = {
        "model": MODEL, "messages": [{"role": "user", "content": question}], "stream": True,
        "stream_options": {"include_usage": True}, "max_tokens": MAX_TOKENS, "temperature": 0,
    }  # fmt: skip
    if structured:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
    return orjson.dumps(body).decode()


def _peer_body(question: str, grammar: str | None) -> str:
    body: dict[str, Any] = {
        "model": MODEL, "prompt": _transcript(question), "stream": True, "max_tokens": MAX_TOKENS,
        "temperature": 0, "repeat_penalty": 1.0,
    }  # fmt: skip
    if grammar is None:
        body["stop"] = list(STOPS)
    else:
        body["grammar"] = grammar
    return orjson.dumps(body).decode()


def _rate(s: StreamRecord, tokens: int | None) -> float | None:
    span = sum(s.gaps)
    n = tokens if tokens is not None else s.tokens
    return round((n - 1) / span, 1) if span > 0 and n > 1 else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 1)


def _servers(options: Options, trials: int) -> dict[str, Any]:
    grammar = _grammar()
    lm = start_lmstream([{"name": MODEL, "backend": "llama_cpp"}], name="lmstream-structured",
                        n_threads=N_THREADS, n_ctx=N_CTX, store="none", fast_path=[])  # fmt: skip
    servers = [lm]
    with running(servers):
        peer = start_llama_server(n_threads=N_THREADS, n_ctx=N_CTX)
        servers.append(peer)
        lm_port, peer_port = (int(s.url.rsplit(":", 1)[1]) for s in (lm, peer))

        def spec(port: int, path: str, dialect: str, body: str) -> LoadSpec:
            return LoadSpec(port=port, path=path, dialect=dialect, body=body, keep_text=True, timeout_s=300,
                            idle_timeout_s=120)  # fmt: skip

        targets = {
            "lmstream free": lambda q: spec(lm_port, "/v1/chat/completions", "openai", _lm_body(q, False)),
            "lmstream JSON schema": lambda q: spec(lm_port, "/v1/chat/completions", "openai", _lm_body(q, True)),
            "llama_cpp.server free": lambda q: spec(peer_port, "/v1/completions", "completion", _peer_body(q, None)),
            "llama_cpp.server JSON grammar": lambda q: spec(peer_port, "/v1/completions", "completion",
                                                           _peer_body(q, grammar)),
        }
        for make in targets.values():  # warm-up
            run_load(make(JSON_QUESTION.format(n=0)))
        records: dict[str, list[StreamRecord]] = {name: [] for name in targets}
        for trial in range(trials):
            for name, make in targets.items():
                question = (JSON_QUESTION if "JSON" in name else FREE_QUESTION).format(n=100 + trial)
                records[name].extend(run_load(make(question)).streams)
        lm_json, peer_json = records["lmstream JSON schema"], records["llama_cpp.server JSON grammar"]
        same = [a.text == b.text for a, b in zip(lm_json, peer_json, strict=True)]
        out: dict[str, Any] = {"versions": {"llama_cpp.server": peer.extra.get("version", "?")}, "same_json_text": same}
        rows = []
        for name, recs in records.items():
            counts = [s.usage_tokens if s.usage_tokens is not None else s.tokens for s in recs]
            if name == "llama_cpp.server JSON grammar":  # no usage chunk: the same text has lmstream's count
                counts = [o.usage_tokens if ok and o.usage_tokens else c for c, o, ok in zip(counts, lm_json, same, strict=True)]
            rates = [r for r in (_rate(s, c) for s, c in zip(recs, counts, strict=True)) if r is not None]
            ttfts = [s.ttft for s in recs if s.ttft is not None]
            entry = {
                "tokens_per_s_p50": pct(rates, 50),
                "tokens_per_s": rates,
                "ttft_ms_p50": _ms(pct(ttfts, 50)),
                "completion_tokens": counts,
                "errors": [s.error for s in recs if s.error],
            }
            out[name] = entry
            rows.append([name, len(recs), entry["tokens_per_s_p50"], entry["ttft_ms_p50"], sum(counts) // max(1, len(counts))])
        out["table"] = print_table(
            f"Structured output, servers (JSON text identical: {sum(same)}/{len(same)})",
            ["target", "requests", "decode tokens/s p50", "TTFT p50 ms", "tokens per answer"],
            rows,
        )
        return out


def _sampler(trials: int) -> dict[str, Any]:
    """Free, check-then-mask and mask-every-step sampling, one model, no HTTP."""
    import llama_cpp

    from lmstream.backends.sampling import ConstrainedSampler, grammar_sampler

    llm = llama_cpp.Llama(model_path=gguf_path(), n_ctx=N_CTX, n_batch=64, n_threads=N_THREADS, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    grammar = _grammar()

    def chain(masked: bool) -> Any:
        c = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if masked:
            llama_cpp.llama_sampler_chain_add(c, grammar_sampler(vocab, grammar))
        llama_cpp.llama_sampler_chain_add(c, llama_cpp.llama_sampler_init_greedy())
        return c

    generated: list[int] = []
    masked_all: list[int] = []

    def generate(kind: str, question: str) -> tuple[int, float, float, int]:
        tokens = llm.tokenize(_transcript(question).encode(), add_bos=True)
        llm.reset()
        llm.eval(tokens)
        if kind in ("check", "check_all"):
            support = 1 if kind == "check" else None  # greedy: only the top token
            sampler = ConstrainedSampler(chain(False), grammar_sampler(vocab, grammar), n_vocab, support=support)
        else:
            sampler = ConstrainedSampler(chain(kind == "mask"), None, n_vocab)
        generated.clear()
        produced, sampling, started = 0, 0.0, time.perf_counter()
        try:
            while produced < MAX_TOKENS:
                before = time.perf_counter()
                token = sampler.sample(llm.ctx)
                sampling += time.perf_counter() - before
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                produced += 1
                generated.append(token)
                llm.eval([token])
        finally:
            sampler.close()
        masked_all.append(sampler.masked_all)
        return produced, time.perf_counter() - started, sampling, sampler.resampled

    kinds = {"free": "free greedy", "check": "JSON: check, then the allowed of the lead (lmstream)",
             "check_all": "JSON: check, then mask the whole vocabulary (llama.cpp server)",
             "mask": "JSON: mask every step (llama-cpp-python)"}  # fmt: skip
    out: dict[str, Any] = {}
    rows = []
    results: dict[str, list[tuple[int, float, float, int]]] = {k: [] for k in kinds}
    texts: dict[str, list[str]] = {}
    whole: dict[str, int] = {k: 0 for k in kinds}
    for trial in range(trials):
        for kind in kinds:
            question = (FREE_QUESTION if kind == "free" else JSON_QUESTION).format(n=200 + trial)
            results[kind].append(generate(kind, question))
            whole[kind] += masked_all.pop()
            texts.setdefault(kind, []).append(llm.detokenize(generated).decode("utf-8", "replace"))
    for kind, label in kinds.items():
        rates = [n / s for n, s, _, _ in results[kind] if s > 0]
        per_token = [1000 * t / max(1, n) for n, _, t, _ in results[kind]]
        tokens = sum(n for n, _, _, _ in results[kind])
        rejected = sum(r for _, _, _, r in results[kind])
        out[kind] = {"tokens_per_s": [round(r, 1) for r in rates], "tokens_per_s_p50": round(pct(rates, 50) or 0, 1),
                     "sample_ms_per_token": [round(v, 2) for v in per_token],
                     "sample_ms_per_token_p50": round(pct(per_token, 50) or 0, 2),
                     "tokens": tokens, "rejected": rejected, "masked_whole_vocabulary": whole[kind]}  # fmt: skip
        rows.append([label, out[kind]["sample_ms_per_token_p50"], out[kind]["tokens_per_s_p50"], tokens,
                     f"{rejected} ({100 * rejected / max(1, tokens):.0f}%)", whole[kind] if kind != "mask" else tokens])  # fmt: skip
    out["same_json_text"] = texts["check"] == texts["check_all"] == texts["mask"]
    out["table"] = print_table(f"Structured output, sampling in-process (one model, greedy; the three JSON "
                               f"samplers wrote the same text: {out['same_json_text']})",
                               ["sampling", "ms choosing a token p50", "tokens/s p50 (eval + sample)", "tokens",
                                "rejected by the grammar", "whole vocabulary masked"], rows)  # fmt: skip
    llm.close()
    return out


def run(options: Options) -> dict[str, Any]:
    trials = 2 if options.quick else 5
    return {"n_threads": N_THREADS, "max_tokens": MAX_TOKENS, "schema": SCHEMA,
            "servers": _servers(options, trials), "sampler": _sampler(trials)}  # fmt: skip
