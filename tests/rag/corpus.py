"""Real documents installed by Debian packages (scripts/system-packages.txt).

Tests skip (with the package to install) where a file is missing, so a machine without
them says why instead of failing obscurely.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PYDOC = Path("/usr/share/doc/python3.11/html")
PIPDOC = Path("/usr/share/doc/python3-pip/html")
PDF_TASN1 = Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf")
PDF_MIME = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")

_PACKAGES = {PYDOC: "python3.11-doc", PIPDOC: "python3-pip", PDF_TASN1: "libtasn1-doc", PDF_MIME: "shared-mime-info"}


def need(path: Path) -> Path:
    """``path`` if it is installed, else skip the test naming the Debian package."""
    for root, package in _PACKAGES.items():
        if (path == root or root in path.parents) and not path.exists():
            pytest.skip(f"{path} is missing: apt-get install {package}")
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path


def html(name: str) -> Path:
    return need(PYDOC / name)


def rst(name: str) -> Path:
    return need(PYDOC / "_sources" / name)


def markdown(name: str) -> Path:
    return need(PIPDOC / name)
