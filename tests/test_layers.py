"""The layers of ARCHITECTURE.md, enforced: no module imports from a layer above its own.

Every module of ``lmstream`` belongs to exactly one layer (the first pattern that
matches its dotted name, most specific first). An import, typing-only ones included,
may go to the same layer or below, never above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lmstream

ROOT = Path(lmstream.__file__).parent

# (layer, prefixes): lower numbers are lower layers.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (9, ("lmstream.cli", "lmstream.__main__", "lmstream.server")),
    (8, ("lmstream.http.app", "lmstream.http.openapi")),
    (6, ("lmstream.http.extension", "lmstream.http.state", "lmstream.http.endpoint", "lmstream.http.auth",
         "lmstream.http.streaming", "lmstream.http.admission", "lmstream.http.media",
         "lmstream.http.shapes", "lmstream.http.responses")),
    (7, ("lmstream.http", "lmstream.metrics", "lmstream.conversations", "lmstream.cluster.extension", "lmstream.rag")),
    (7, ("lmstream.tools.routes", "lmstream.tools.wire", "lmstream.tools.extension", "lmstream.team.extension")),
    (5, ("lmstream.dialects", "lmstream.access")),
    (4, ("lmstream.store",)),
    (3, ("lmstream.hub", "lmstream.cluster", "lmstream.tools.step", "lmstream.tools.loop", "lmstream.tools.chat",
         "lmstream.team")),
    (2, ("lmstream.backends", "lmstream.httpclient", "lmstream.router", "lmstream.fastpath", "lmstream.profiles",
         "lmstream.tools")),
    (1, ("lmstream.request", "lmstream.capabilities", "lmstream.codec", "lmstream.prompt", "lmstream.model_assets")),
    (0, ("lmstream.asgi", "lmstream.errors", "lmstream.events", "lmstream.completion", "lmstream.text", "lmstream.settings",
         "lmstream.settings_sections", "lmstream.settings_sources", "lmstream")),
]


def layer(module: str) -> int:
    for number, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and ARCHITECTURE.md)")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, name) for line, name in found if name == "lmstream" or name.startswith("lmstream.")]


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        for line, target in imports(path):
            if target == "lmstream":
                continue
            if layer(target) > layer(module):
                upward.append(f"{path.relative_to(ROOT.parent)}:{line} {module} (layer {layer(module)}) "
                              f"imports {target} (layer {layer(target)})")
    assert upward == []


def test_every_module_has_a_layer() -> None:
    for path in ROOT.rglob("*.py"):
        layer(module_name(path))
