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
unknown model) are one line on stderr and exit status 1. The answer is shown by
``answer.py``; everything goes through ``lmstream.cli.client``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from lmstream.cli.answer import Printer, choose_mode, print_sources, run_turn, stats_line
from lmstream.cli.client import DEFAULT_URL, Client, ClientError
from lmstream.cli.options import ApiKeyOption, UrlOption, fail, note

__all__ = ["Session", "register"]

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
