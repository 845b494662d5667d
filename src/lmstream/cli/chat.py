"""``lmstream chat``: ask once, or chat interactively, against any lmstream server.

``lmstream chat "question"`` streams the answer to stdout as it arrives, then prints
the time to first token and tokens/s on stderr. ``--no-stream`` prints the whole
answer at once; ``--json`` prints every event as one JSON object per line;
``--json-schema FILE`` asks for an answer that is JSON valid against the schema in FILE
(structured output: printed as it streams, never rendered as Markdown). With no
question it is an interactive chat that keeps the conversation (``/help`` lists the
commands); Ctrl-C during an answer stops that generation on the server (stored as
``stopped``) and returns to the prompt; Ctrl-C at the prompt exits.

``--collection docs`` answers from that collection's documents (questions are looked up
first; the server's routing rule decides): the numbered sources the answer cites as
``[n]`` are printed after it. ``--tool NAME`` (repeatable) lets the model call the
server's tool NAME; each call's progress, chunks and result are lines on stderr
(``[calculator] …``), the answer on stdout. On a terminal the answer renders as Markdown
while it streams (rich.live); piped, it is plain text. Failures (server down, wrong key,
unknown model) are one line on
stderr and exit status 1. Everything goes through ``lmstream.cli.client``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown

from lmstream.cli.client import DEFAULT_URL, Client, ClientError, StreamEvent

__all__ = [
    "ApiKeyOption",
    "Printer",
    "TurnResult",
    "UrlOption",
    "fail",
    "register",
    "run_turn",
    "sources_text",
    "tool_line",
]

UrlOption = Annotated[
    str, typer.Option("--url", envvar="LMSTREAM_URL", help="The lmstream server.", show_default=True)
]
ApiKeyOption = Annotated[
    str | None, typer.Option("--api-key", envvar="LMSTREAM_API_KEY", help="API key, if the server requires one.")
]
Mode = Literal["plain", "markdown", "buffered", "json"]
PROMPT = "you> "
HELP = """commands:
  /new            start a new conversation
  /model NAME     answer with model NAME (/model alone: list the models)
  /profile NAME   use profile NAME (/profile alone: list the profiles)
  /collection NAME  answer from the documents of collection NAME (/collection off: stop;
                  alone: list the collections)
  /history        show this conversation
  /exit           leave (Ctrl-D and Ctrl-C at the prompt too)
Ctrl-C during an answer stops it."""


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned ``Exit(1)``."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(1)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


@dataclass(slots=True)
class Session:
    """What the interactive chat remembers between turns."""

    client: Client
    printer: Printer
    model: str | None
    profile: str | None
    conversation_id: str | None
    store: bool
    response_format: dict[str, Any] | None = field(default=None)
    tools: list[str] = field(default_factory=list)
    collection: str | None = None

    def body(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": text, "store": self.store}
        for key in ("model", "profile", "conversation_id", "response_format", "tools", "collection"):
            if getattr(self, key):
                body[key] = getattr(self, key)
        return body

    def ask(self, text: str) -> None:
        turn = run_turn(self.client, self.body(text), self.printer)
        if turn.conversation_id:
            self.conversation_id = turn.conversation_id
        print_sources(turn, self.printer.mode)
        if turn.stopped:
            note("[stopped]")
        elif turn.error is not None:
            note(f"error: {turn.error.get('message')}")
        elif turn.done is not None and self.printer.mode != "json":
            note(stats_line(turn.done))

    def command(self, line: str) -> bool:
        """Run a /command; False to leave the chat."""
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/new":
            self.conversation_id = None
            note("new conversation")
        elif name == "/model" and arg:
            self.model = self.client.model(arg)["id"]
            note(f"model: {self.model}")
        elif name == "/model":
            note("models: " + ", ".join(m["id"] for m in self.client.models()) + f" (now: {self.model or 'default'})")
        elif name == "/profile":
            profiles = self.client.profiles()
            names = [p["name"] for p in profiles["data"]]
            if arg and arg not in names:
                raise ClientError(f"profile {arg!r} not found; available: {', '.join(names)}")
            if arg:
                self.profile = arg
            note(f"profile: {self.profile or profiles['default']} (available: {', '.join(names)})")
        elif name == "/collection":
            names = [c["name"] for c in self.client.json("GET", "/v1/collections")["data"]]
            if arg == "off":
                self.collection = None
            elif arg and arg not in names:
                raise ClientError(f"no collection {arg!r}; collections: {', '.join(names) or 'none yet'}")
            elif arg:
                self.collection = arg
            note(f"collection: {self.collection or 'none'} (available: {', '.join(names) or 'none yet'})")
        elif name == "/history":
            self.history()
        else:
            note(HELP)
        return True

    def history(self) -> None:
        if self.conversation_id is None:
            note("no conversation yet")
            return
        conversation = self.client.conversation(self.conversation_id)
        note(f"{conversation['title'] or 'untitled'} ({conversation['id']})")
        for message in conversation["messages"]:
            who = "you" if message["role"] == "user" else message["role"]
            status = "" if message["status"] == "complete" else f" [{message['status']}]"
            sys.stdout.write(f"{who}{status}: {message['content'].strip()}\n")
        sys.stdout.flush()


def schema_format(path: Path) -> dict[str, Any]:
    """The native ``response_format`` for the JSON schema in ``path``."""
    try:
        schema = json.loads(path.read_text())
    except OSError as exc:
        raise ClientError(f"cannot read the schema {str(path)!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ClientError(f"the schema {str(path)!r} is not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise ClientError(f"the schema {str(path)!r} must be a JSON object")
    return {"type": "json_schema", "json_schema": {"name": path.stem, "schema": schema}}


def interactive(session: Session) -> None:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    note(f"lmstream chat on {session.client.url} · /help for commands · Ctrl-C stops an answer")
    while True:
        try:
            line = input(PROMPT).strip()
        except (EOFError, KeyboardInterrupt):
            sys.stdout.write("\n")
            return
        if not line:
            continue
        try:
            if line.startswith("/"):
                if not session.command(line):
                    return
            else:
                session.ask(line)
        except ClientError as exc:
            note(f"error: {exc.message}")


def register(app: typer.Typer) -> None:
    @app.command()
    def chat(
        question: Annotated[
            str | None, typer.Argument(help="Ask this and exit ('-' reads stdin); leave out to chat.")
        ] = None,
        model: Annotated[str | None, typer.Option("--model", "-m", help="Model name or alias.")] = None,
        profile: Annotated[str | None, typer.Option("--profile", "-p", help="Profile (chat, code, ...).")] = None,
        conversation: Annotated[
            str | None, typer.Option("--conversation", "-c", help="Continue this conversation (conv_...).")
        ] = None,
        no_stream: Annotated[bool, typer.Option("--no-stream", help="Print the whole answer at once.")] = False,
        json_: Annotated[bool, typer.Option("--json", help="Print the raw events, one JSON per line.")] = False,
        no_store: Annotated[bool, typer.Option("--no-store", help="Keep nothing on the server.")] = False,
        collection: Annotated[
            str | None,
            typer.Option("--collection", help="Answer from this collection's documents, citing them [n]."),
        ] = None,
        json_schema: Annotated[
            Path | None,
            typer.Option("--json-schema", help="Answer with JSON valid against the JSON schema in this file."),
        ] = None,
        tool: Annotated[
            list[str] | None,
            typer.Option("--tool", "-t", help="Let the model call this server tool (repeat for more)."),
        ] = None,
        url: UrlOption = DEFAULT_URL,
        api_key: ApiKeyOption = None,
    ) -> None:
        """Ask a question (streamed as it is written), or chat when no question is given."""
        mode = choose_mode(json_=json_, no_stream=no_stream)
        try:
            response_format = None if json_schema is None else schema_format(json_schema)
        except ClientError as exc:
            raise fail(exc.message) from None
        printer = Printer("plain" if response_format and mode == "markdown" else mode)
        with Client(url, api_key) as client:
            session = Session(
                client, printer, model, profile, conversation, not no_store, response_format, tool or [], collection
            )
            try:
                if question is None:
                    client.profiles()  # fail now, not at the first question: server down, bad key
                    if model:
                        session.model = client.model(model)["id"]
                    interactive(session)
                    return
                text = sys.stdin.read() if question == "-" else question
                turn = run_turn(client, session.body(text), printer)
            except ClientError as exc:
                raise fail(exc.message) from None
        print_sources(turn, printer.mode)
        if turn.error is not None:
            raise fail(str(turn.error.get("message")))
        if turn.stopped:
            note("[stopped]")
            raise typer.Exit(130)
        if turn.done is not None and printer.mode != "json":
            note(stats_line(turn.done))
