"""What the scripted models answer in the browser tests."""

from __future__ import annotations

# Numbered words: a lost or repeated token shows in an exact comparison.
NUMBERED = " ".join(f"w{i:02d}" for i in range(1, 61))

LONG = " ".join(f"long{i:03d}" for i in range(1, 301))

CODE = 'def greet(name: str) -> str:\n    """Say hello."""\n    return f"Hello, {name}!"'

MARKDOWN = (
    "## Release plan\n\n"
    "Three steps:\n\n"
    "- build the **wheel**\n"
    "- run the `tests`\n"
    "- publish\n\n"
    f"```python\n{CODE}\n```\n\n"
    "That is all."
)

# Raw HTML in an answer must be shown, never run: each piece sets a flag if it runs.
HOSTILE = (
    "Careful: <img src=x onerror=\"window.__pwned='img'\"> and "
    "<script>window.__pwned='script'</script> and "
    '<a href="javascript:window.__pwned=\'href\'">click</a> and '
    "[a link](javascript:window.__pwned='md') end."
)
