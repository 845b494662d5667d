"""``lmstream team "question"``: a team of members answers in rounds, each message streamed.

    lmstream team "Should we rewrite it in Rust?" --members Optimist,Skeptic,Pragmatist \
        --rounds 2 --moderator [--model NAME] [--max-tokens 200] [--json]

A member is a name (``Skeptic``: one of the default team, or a new voice) or
``name@model`` (answers with that model; an Ollama tag such as ``llama3.2:1b`` is fine). Each message is printed as it
streams under its speaker's name (``## Skeptic (round 1)``); ``--json`` prints the raw
events. Ctrl-C stops the team on the server.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from lmstream.cli.answer import stats_line
from lmstream.cli.client import DEFAULT_URL, Client, ClientError
from lmstream.cli.options import ApiKeyOption, UrlOption, fail, note

__all__ = ["parse_member", "register"]


def parse_member(spec: str) -> str | dict[str, Any]:
    """``name`` or ``name@model`` as a member of the request."""
    name, _, model = spec.strip().partition("@")
    return {"name": name, "model": model} if model else name


def register(app: typer.Typer) -> None:
    @app.command()
    def team(
        question: Annotated[str, typer.Argument(help="What the team answers ('-' reads stdin).")],
        members: Annotated[
            str | None, typer.Option("--members", help="Comma-separated: name or name@model.")
        ] = None,
        rounds: Annotated[int, typer.Option("--rounds", "-r", min=1, max=5, help="Rounds of messages.")] = 1,
        moderator: Annotated[bool, typer.Option("--moderator", help="A moderator sums up at the end.")] = False,
        model: Annotated[str | None, typer.Option("--model", "-m", help="Model of members that name none.")] = None,
        max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per message.")] = 256,
        json_: Annotated[bool, typer.Option("--json", help="Print the raw events, one JSON per line.")] = False,
        no_store: Annotated[bool, typer.Option("--no-store", help="Keep nothing on the server.")] = False,
        url: UrlOption = DEFAULT_URL,
        api_key: ApiKeyOption = None,
    ) -> None:
        """Ask a team: each member's message streams in turn."""
        body: dict[str, Any] = {
            "question": sys.stdin.read() if question == "-" else question,
            "rounds": rounds,
            "moderator": moderator,
            "max_tokens": max_tokens,
            "store": not no_store,
        }
        if members:
            body["members"] = [parse_member(m) for m in members.split(",") if m.strip()]
        if model:
            body["model"] = model
        stream_id: str | None = None
        done: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        out = sys.stdout
        with Client(url, api_key) as client:
            try:
                with client.stream(body, "/v1/team/stream") as events:
                    for event in events:
                        data = event.data
                        if json_:
                            out.write(event.as_json() + "\n")
                        elif event.event == "message_start":
                            out.write(f"## {data['speaker']} (round {data['round']})\n\n")
                        elif event.event == "token":
                            out.write(data.get("text", ""))
                        elif event.event == "message_done":
                            out.write("\n\n")
                        out.flush()
                        if event.event == "start":
                            stream_id = data.get("id")
                        elif event.event == "done":
                            done = data
                        elif event.event == "error":
                            error = data
            except ClientError as exc:
                raise fail(exc.message) from None
            except KeyboardInterrupt:
                if stream_id is not None:
                    client.cancel(stream_id)
                note("[stopped]")
                raise typer.Exit(130) from None
        if error is not None:
            raise fail(str(error.get("message")))
        if done is not None and not json_:
            note(stats_line(done))
