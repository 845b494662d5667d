"""Prompt formats for models without a chat template (base models such as Gemma 3 270M).

A base model continues text, so the conversation is written as a plain transcript and
the assistant's turn ends where the model starts the next speaker's line: those line
starts are the stop sequences. They also catch the role markers a base model invents
when a prompt shows it another transcript format: Open WebUI's title and follow-up
prompts quote the chat as ``<chat_history> USER: ... ASSISTANT: ...``, and Gemma 3
270M continues them with ``\nUSER:`` / ``\nASSISTANT:`` turns and
``</chat_history>`` until its token limit.
"""

from __future__ import annotations

from lmstream.request import Message

__all__ = ["TRANSCRIPT_STOPS", "transcript_prompt"]

_SPEAKER = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
TRANSCRIPT_STOPS: tuple[str, ...] = (
    "\nUser:",
    "\nSystem:",
    "\nAssistant:",
    "\nTool:",
    "<end_of_turn>",
    "\nUSER:",
    "\nSYSTEM:",
    "\nASSISTANT:",
    "<chat_history>",
    "</chat_history>",
)


def transcript_prompt(messages: tuple[Message, ...] | list[Message]) -> str:
    """``User: hi\\nAssistant:`` — the text a base model continues as the assistant."""
    lines: list[str] = []
    for message in messages:
        content = message.content.strip()
        lines.append(f"{_SPEAKER[message.role]}: {content}")
    lines.append("Assistant:")
    return "\n".join(lines)
