from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lmstream.settings import ModelConfig
from tests.support import LiveServer, start_server

os.environ.setdefault("LMSTREAM_LOG_LEVEL", "warning")
# Apps built without an explicit data_dir keep their conversations here, never in ~.
os.environ["LMSTREAM_DATA_DIR"] = tempfile.mkdtemp(prefix="lmstream-tests-")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real ``lmstream serve`` processes; all are stopped at the end of the test."""
    started: list[LiveServer] = []

    def start(models: list[ModelConfig] | None = None, **kwargs: Any) -> LiveServer:
        server = start_server(tmp_path, models, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
