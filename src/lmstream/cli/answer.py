"""One streamed answer on the terminal, as ``lmstream chat`` shows it.

``run_turn`` streams one answer from the native ``/v1/streams`` API through a
``Printer`` (``Mode``: plain text as it arrives, Markdown rendered live with rich on a
terminal, the whole answer at once, or every event as one JSON line) and gathers what
the rest of the command needs (``TurnResult``: the stream and conversation ids, the
``done`` event, an error, the sources). A server-side tool's events become lines on
stderr (``tool_line``); Ctrl-C stops the generation on the server. After the answer:
its numbered sources (``sources_text``) and one line of timings (``stats_line``, which
``lmstream team`` prints too).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown

from lmstream.cli.client import Client, ClientError, StreamEvent
from lmstream.cli.options import note

__all__ = [
    "Mode",
    "Printer",
    "TurnResult",
    "choose_mode",
    "print_sources",
    "run_turn",
    "sources_text",
    "stats_line",
    "tool_line",
]

Mode = Literal["plain", "markdown", "buffered", "json"]


class Printer:
    """Shows one answer as it streams, in one of four modes."""

    def __init__(self, mode: Mode, console: Console | None = None) -> None:
        self.mode = mode
        self.console = console or Console()
        self.text = ""
        self._live: Live | None = None

    def __enter__(self) -> Printer:
        self.text = ""
        if self.mode == "markdown":
            self._live = Live(
                Markdown(""), console=self.console, refresh_per_second=12, vertical_overflow="visible"
            )
            self._live.start()
        return self

    def event(self, event: StreamEvent) -> None:
        if self.mode == "json":
            sys.stdout.write(event.as_json() + "\n")
            sys.stdout.flush()

    def token(self, text: str) -> None:
        self.text += text
        if self.mode == "plain":
            sys.stdout.write(text)
            sys.stdout.flush()
        elif self._live is not None:
            self._live.update(Markdown(self.text))

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(Markdown(self.text), refresh=True)
            self._live.stop()
            self._live = None
        elif self.mode == "plain" and self.text and not self.text.endswith("\n"):
            sys.stdout.write("\n")
        elif self.mode == "buffered":
            sys.stdout.write(self.text.rstrip("\n") + "\n")
        sys.stdout.flush()


@dataclass(slots=True)
class TurnResult:
    stream_id: str | None = None
    conversation_id: str | None = None
    model: str | None = None
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    stopped: bool = False
    sources: list[dict[str, Any]] | None = None


def tool_line(event: StreamEvent, names: dict[str, str]) -> str | None:
    """A server-side tool's event as one line for stderr (None: nothing to say)."""
    data = event.data
    if event.event == "tool_call":
        if data.get("id") and data.get("name"):
            names[data["id"]] = data["name"]
        return None
    name = names.get(str(data.get("call_id")), "tool")
    if event.event == "tool_progress":
        percentage = data.get("percentage")
        parts = [data.get("stage") or "", f"{percentage:.0f}%" if percentage is not None else "", data.get("message") or ""]
        return f"[{name}] " + " ".join(part for part in parts if part)
    if event.event == "tool_chunk":
        return f"[{name}] {str(data.get('text', '')).strip()}"
    if event.event == "tool_result":
        ms = data.get("execution_ms") or 0
        if data.get("error"):
            return f"[{name}] failed after {ms:.0f} ms: {data['error']}"
        result = str(data.get("result", ""))
        return f"[{name}] done in {ms:.0f} ms: {result if len(result) <= 200 else result[:200] + '…'}"
    return None


def run_turn(client: Client, body: dict[str, Any], printer: Printer, path: str = "/v1/streams") -> TurnResult:
    """Stream one answer through ``printer``; Ctrl-C cancels it on the server."""
    turn = TurnResult()
    names: dict[str, str] = {}
    try:
        with printer, client.stream(body, path) as events:
            for event in events:
                printer.event(event)
                if printer.mode != "json" and event.event.startswith("tool_"):
                    line = tool_line(event, names)
                    if line is not None:
                        note(line)
                if event.event == "start":
                    turn.stream_id = event.data.get("id")
                    turn.conversation_id = event.data.get("conversation_id")
                    turn.model = event.data.get("model")
                elif event.event == "token":
                    printer.token(event.data.get("text", ""))
                elif event.event == "sources":
                    turn.sources = list(event.data.get("items") or [])
                elif event.event == "done":
                    turn.done = event.data
                    if "sources" in event.data:
                        turn.sources = list(event.data["sources"])
                    turn.stopped = event.data.get("finish_reason") == "cancelled"
                elif event.event == "error":
                    turn.error = event.data
                elif event.event == "warning":  # e.g. the answer is not being kept
                    note(str(event.data.get("message", "warning")))
    except KeyboardInterrupt:
        turn.stopped = True
        if turn.stream_id is not None:
            try:
                client.cancel(turn.stream_id)
            except ClientError as exc:
                note(f"could not stop the generation on the server: {exc.message}")
    return turn


def sources_text(sources: list[dict[str, Any]]) -> str:
    """The numbered sources an answer cites, one a line, for after the answer."""
    if not sources:
        return "Sources: none found\n"
    lines = ["Sources:"]
    for source in sources:
        where = f" · {source['source']}" if source.get("source") else ""
        lines.append(f"  [{source['number']}] {source['title']}{where}")
    return "\n".join(lines) + "\n"


def print_sources(turn: TurnResult, mode: Mode) -> None:
    if turn.sources is not None and mode != "json" and not turn.stopped:
        sys.stdout.write("\n" + sources_text(turn.sources))
        sys.stdout.flush()


def stats_line(done: dict[str, Any]) -> str:
    parts = []
    if done.get("ttft_ms") is not None:
        parts.append(f"ttft {done['ttft_ms']:.0f} ms")
    if done.get("tokens_per_second") is not None:
        parts.append(f"{done['tokens_per_second']:.1f} tokens/s")
    usage = done.get("usage") or {}
    if usage.get("completion_tokens") is not None:
        parts.append(f"{usage['completion_tokens']} tokens")
    return " · ".join(parts)


def choose_mode(*, json_: bool, no_stream: bool) -> Mode:
    if json_:
        return "json"
    if no_stream:
        return "buffered"
    return "markdown" if sys.stdout.isatty() else "plain"
