"""``python -m bench.summary [--write]``: the results in ``bench/results/*.json`` as Markdown.

Prints the machine, every scenario's tables and the targets with their status; with
``--write`` it puts them into BENCHMARKS.md between its ``results:begin``/``results:end``
markers, so a rerun refreshes that page.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any

import orjson

from bench.report import RESULTS

__all__ = ["main", "targets"]

ORDER = ("overhead", "many", "cancel", "embedded", "batching", "auth", "tools")
PAGE = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _load() -> dict[str, dict[str, Any]]:
    out = {}
    for name in ORDER:
        path = RESULTS / f"{name}.json"
        if path.exists():
            out[name] = orjson.loads(path.read_bytes())
    return out


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return f"{value}{unit}"


def targets(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, bool | None]]:
    """(target, lmstream's figure, comparison, met?)."""
    rows: list[tuple[str, str, str, bool | None]] = []
    over = results.get("overhead", {})
    c100 = _get(over, "phases", "c100") or {}
    lm, lite = c100.get("lmstream", {}), c100.get("litellm", {})
    p50, p99 = _get(lm, "added_ttft_ms", "p50"), _get(lm, "added_ttft_ms", "p99")
    l50, l99 = _get(lite, "added_ttft_ms", "p50"), _get(lite, "added_ttft_ms", "p99")
    if p50 is not None:
        rows.append(("TTFT added at 100 streams: p50 <= 1 ms", _fmt(p50, " ms"), "", p50 <= 1))
        rows.append(("TTFT added at 100 streams: p99 <= 3 ms", _fmt(p99, " ms"), "", p99 <= 3))
        rows.append(("TTFT added: <= 1/10 of LiteLLM's (p50, p99)", f"{_fmt(p50)} / {_fmt(p99)} ms", f"LiteLLM {_fmt(l50)} / {_fmt(l99)} ms",
                     bool(l50 and l99 and p50 * 10 <= l50 and p99 * 10 <= l99)))  # fmt: skip
    labels = {
        "lmstream-core": "lmstream-core: scripted backend, no upstream client",
        "lmstream-lean": "lmstream-lean: prototype raw-asyncio upstream client",
    }
    for variant, label in labels.items():
        v = c100.get(variant, {})
        v50, v99 = _get(v, "added_ttft_ms", "p50"), _get(v, "added_ttft_ms", "p99")
        if v50 is not None and v99 is not None:
            rows.append((f"({label}) TTFT added at 100 streams <= 1 / 3 ms", f"{_fmt(v50)} / {_fmt(v99)} ms", "", v50 <= 1 and v99 <= 3))
        v_tps, lite_tps = v.get("tokens_per_cpu_s"), lite.get("tokens_per_cpu_s")
        if v_tps and lite_tps:
            rows.append((f"({label}) tokens per CPU second >= 10x LiteLLM's (c100)", f"{v_tps:,.0f}", f"LiteLLM {lite_tps:,.0f} ({v_tps / lite_tps:.1f}x)", v_tps >= 10 * lite_tps))
    for phase, times in (("c100", 10), ("sat100", 18), ("sat1", 18)):  # paced; at saturation
        p = _get(over, "phases", phase) or {}
        a, b = _get(p, "lmstream", "tokens_per_cpu_s"), _get(p, "litellm", "tokens_per_cpu_s")
        if a and b:
            rows.append((f"tokens per CPU second >= {times}x LiteLLM's ({phase})", f"{a:,.0f}", f"LiteLLM {b:,.0f} ({a / b:.1f}x)", a >= times * b))
    many = _get(results.get("many", {}), "levels", "10000")
    if many:
        rows.append(("10,000 open streams: none failed, no token lost", f"{many['failed']} failed, {many['lost_tokens']} lost", "", many["failed"] == 0 and many["lost_tokens"] == 0))
        rows.append(("10,000 open streams: < 20 KB server memory per stream (aim 12)", _fmt(many["kb_per_stream"], " KB"), "", many["kb_per_stream"] < 20))
    cancel = _get(results.get("cancel", {}), "targets")
    if cancel:
        lm_c = cancel["lmstream"]
        worst = lm_c["latency_ms"]["max"]
        ok = worst is not None and worst <= 50 and lm_c["not_cancelled_within_wait"] == 0
        lite_c = cancel.get("litellm", {})
        rows.append(("upstream closed <= 50 ms after the client left (max)", _fmt(worst, " ms"), f"LiteLLM max {_fmt(_get(lite_c, 'latency_ms', 'max'), ' ms')}", ok))
    emb = results.get("embedded", {})
    stop = _get(emb, "cancel", "lmstream", "stop_after_disconnect_ms")
    if stop:
        rows.append(("embedded model stops <= 50 ms after the client left (max)", _fmt(max(stop), " ms"), "", max(stop) <= 50))
    single = _get(emb, "single")
    if single:
        a, b = single["lmstream"], single["llama_cpp.server"]
        rows.append(("embedded tokens/s >= llama_cpp.server's", _fmt(a["tokens_per_s_p50"]), f"peer {_fmt(b['tokens_per_s_p50'])}",
                     (a["tokens_per_s_p50"] or 0) >= (b["tokens_per_s_p50"] or 0)))  # fmt: skip
        rows.append(("embedded TTFT <= llama_cpp.server's", _fmt(a["ttft_ms_p50"], " ms"), f"peer {_fmt(b['ttft_ms_p50'], ' ms')}",
                     (a["ttft_ms_p50"] or 1e9) <= (b["ttft_ms_p50"] or 0)))  # fmt: skip
    rows.extend(_batching_targets(results.get("batching", {})))
    return rows


def _batching_targets(bat: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    rows: list[tuple[str, str, str, bool | None]] = []
    four = _get(bat, "four", "lmstream")
    if not four:
        return rows
    # The reference's own ratios, same run; what two cores allow at best: `bench.compute_floor`.
    peer = _get(bat, "four", "llama.cpp-server") or {}
    ratio = four.get("ttft_max_over_lone")
    rows.append(("4 clients: every client's first token within 3x a lone client's", _fmt(ratio, "x"),
                 f"llama-server {_fmt(peer.get('ttft_max_over_lone'), 'x')}", None if ratio is None else ratio <= 3))  # fmt: skip
    ratio = four.get("aggregate_over_lone")
    rows.append(("4 clients: aggregate tokens/s >= 2x one client's", _fmt(ratio, "x"),
                 f"{_fmt(four.get('aggregate_tokens_per_s'))} tok/s; llama-server {_fmt(peer.get('aggregate_over_lone'), 'x')}",
                 None if ratio is None else ratio >= 2))  # fmt: skip
    ratio = bat.get("lmstream_over_native_aggregate")
    native = _get(bat, "four", "llama.cpp-server", "aggregate_tokens_per_s")
    rows.append(("4 clients: aggregate >= 80% of llama-server -np 4's", _fmt(ratio, "x"), f"llama-server {_fmt(native)} tok/s",
                 None if ratio is None else ratio >= 0.8))  # fmt: skip
    ratio = bat.get("lone_rate_over_before")
    before = _get(bat, "lone", "lmstream-before", "tokens_per_s_p50")
    rows.append(("one client alone keeps >= 95% of the tokens/s before batching", _fmt(ratio, "x"), f"before {_fmt(before)} tok/s",
                 None if ratio is None else ratio >= 0.95))  # fmt: skip
    ratio = _get(bat, "cancel", "lmstream", "ratio")
    native = _get(bat, "cancel", "llama.cpp-server", "ratio")
    rows.append(("cancelling 1 of 4: the others' gap p99 moves <= 10% (whole answers)", _fmt(ratio, "x"),
                 f"llama-server {_fmt(native, 'x')}", None if ratio is None else ratio <= 1.1))  # fmt: skip
    ratio = _get(bat, "cancel", "lmstream", "after_leave_ratio")
    native = _get(bat, "cancel", "llama.cpp-server", "after_leave_ratio")
    if ratio is not None:
        rows.append(("cancelling 1 of 4: the others' gap p99 moves <= 10% (tokens after the leave)", _fmt(ratio, "x"),
                     f"llama-server {_fmt(native, 'x')}", ratio <= 1.1))  # fmt: skip
    worst = [v.get("max_ms") for v in (bat.get("openwebui") or {}).values() if v.get("max_ms") is not None]
    missing = sum(v.get("missing", 0) for v in (bat.get("openwebui") or {}).values())
    if worst:
        rows.append(("Open WebUI replay: the user's first token within 1 s", _fmt(max(worst), " ms"), "", max(worst) <= 1000 and missing == 0))
    return rows


def main() -> None:
    if "--write" in sys.argv[1:]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            _print()
        page = PAGE.read_text()
        head, _, rest = page.partition(BEGIN)
        _, _, tail = rest.partition(END)
        PAGE.write_text(f"{head}{BEGIN}\n{out.getvalue()}\n{END}{tail}")
        print(f"wrote {PAGE}")
    else:
        _print()


def _print() -> None:
    results = _load()
    if not results:
        raise SystemExit(f"no results in {RESULTS}: run python -m bench first")
    first = next(iter(results.values()))
    m = first["machine"]
    print(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}")
    for name, data in results.items():
        print(f"\n## {name} (run {data['machine']['when']}, {data.get('duration_s')} s, load average at start {', '.join(f'{x:.2f}' for x in data['machine']['load_avg'])})")
        for key, value in data.items():
            if key == "table" or key.endswith("_table"):
                print(value)
            elif key == "tables":
                for table in value:
                    print(table)
        if "ratios" in data:
            print("\n| figure | lmstream | LiteLLM | ratio |\n|---|---|---|---|")
            for row in data["ratios"]:
                print("| " + " | ".join(_fmt(v) for v in row) + " |")
    print("\n## Targets\n\n| target | lmstream | compared with | met |\n|---|---|---|---|")
    for target, figure, other, ok in targets(results):
        print(f"| {target} | {figure} | {other} | {'yes' if ok else 'no' if ok is not None else '?'} |")


if __name__ == "__main__":
    main()
