"""``lmstream conversations list|show|export|delete`` against a real server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import ANSWER, Run


def new_conversation(lmstream: Run, question: str) -> str:
    result = lmstream("chat", "--json", question)
    assert result.returncode == 0, result.stderr
    conversation_id: str = json.loads(result.stdout.splitlines()[0])["data"]["conversation_id"]
    return conversation_id


def test_list_show_export_delete(lmstream: Run, tmp_path: Path) -> None:
    conversation_id = new_conversation(lmstream, "Which unicorn is fastest?")

    listed = lmstream("conversations", "list", "--query", "unicorn")
    as_json = json.loads(lmstream("conversations", "list", "--json", "--limit", "1").stdout)
    shown = lmstream("conversations", "show", conversation_id)
    markdown = lmstream("conversations", "export", conversation_id)
    exported = lmstream("conversations", "export", conversation_id, "--format", "json", "--output", "c.json")

    assert listed.returncode == 0 and conversation_id in listed.stdout and "Which unicorn is fastest?" in listed.stdout
    assert as_json["data"][0]["id"] == conversation_id and "next_cursor" in as_json
    assert shown.stdout.startswith(f"# Which unicorn is fastest?  [{conversation_id}]")
    assert f"assistant:\n{ANSWER}" in shown.stdout
    assert markdown.stdout.startswith("# Which unicorn is fastest?\n") and "## Assistant" in markdown.stdout
    document = json.loads((tmp_path / "c.json").read_text())
    assert exported.returncode == 0 and document["id"] == conversation_id and len(document["messages"]) == 2

    deleted = lmstream("conversations", "delete", conversation_id)
    gone = lmstream("conversations", "show", conversation_id)
    assert deleted.returncode == 0 and deleted.stderr == f"deleted {conversation_id}\n"
    assert gone.returncode == 1 and gone.stderr == f"error: no conversation '{conversation_id}'\n"
