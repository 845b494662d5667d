"""The page's pure TypeScript modules (SSE decoder, answer fold) under vitest.

Runs when ``web/node_modules`` exists (``scripts/build-web.sh`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_frontend_unit_tests_pass() -> None:
    if not (WEB / "node_modules" / ".bin" / "vitest").exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("web/node_modules is missing: scripts/build-web.sh installs it")
        pytest.skip("web/node_modules is missing: run scripts/build-web.sh")
    result = subprocess.run(
        [str(WEB / "node_modules" / ".bin" / "vitest"), "run", "--reporter=dot"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CI": "1", "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
