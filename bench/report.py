"""Statistics over load-generator records, tables on stdout, JSON in ``bench/results/``."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import LoadResult

__all__ = ["RESULTS", "machine", "pct", "print_table", "summarize", "write_result"]

RESULTS = Path(__file__).resolve().parent / "results"


def pct(values: Sequence[float] | Iterable[float], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) of ``values``; None when empty."""
    data = sorted(values)
    if not data:
        return None
    rank = max(1, math.ceil(p / 100 * len(data)))
    return data[min(rank, len(data)) - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def summarize(result: LoadResult, *, expect_tokens: int | None = None) -> dict[str, Any]:
    """Per-run figures: streams, failures, lost tokens, TTFT and gap percentiles (ms)."""
    streams = result.streams
    ttfts = [s.ttft for s in streams if s.ttft is not None]
    gaps = [g for s in streams for g in s.gaps]
    failed = result.failed
    lost = 0
    if expect_tokens is not None:
        lost = sum(max(0, expect_tokens - s.tokens) for s in streams if s.t_disconnect is None)
    first = min((s.t0 for s in streams), default=0.0)
    last = max((s.t_end or s.t0 for s in streams), default=0.0)
    errors: dict[str, int] = {}
    for s in failed:
        key = (s.error or "incomplete")[:80]
        errors[key] = errors.get(key, 0) + 1
    return {
        "streams": len(streams),
        "failed": len(failed),
        "lost_tokens": lost,
        "errors": errors,
        "tokens": result.tokens,
        "span_s": round(last - first, 3),
        "tokens_per_s": round(result.tokens / (last - first), 1) if last > first else None,
        "ttft_ms": {"p50": ms(pct(ttfts, 50)), "p90": ms(pct(ttfts, 90)), "p99": ms(pct(ttfts, 99)), "max": ms(max(ttfts, default=None))},
        "gap_ms": {"p50": ms(pct(gaps, 50)), "p99": ms(pct(gaps, 99)), "p999": ms(pct(gaps, 99.9)), "max": ms(max(gaps, default=None))},
        "pings_min": min((s.pings for s in streams), default=0),
        "max_idle_s": round(max((s.max_idle for s in streams), default=0.0), 3),
        "loadgen_cpu_s": round(result.cpu_s, 3),
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print (and return) a GitHub-markdown table."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = [f"\n### {title}\n", "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        lines.append("| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_result(scenario: str, data: dict[str, Any], directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{scenario}.json"
    path.write_bytes(orjson.dumps({"scenario": scenario, "machine": machine(), **data}, option=orjson.OPT_INDENT_2))
    return path
