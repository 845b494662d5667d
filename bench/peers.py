"""The peers we measure against, each installed from PyPI into its own virtualenv.

``bench/.venvs/<name>/`` (gitignored) holds one venv per peer. Installation is
idempotent: a marker file records what was installed, and a venv whose marker matches
is used as it is.

* ``litellm``: ``litellm[proxy]``, LiteLLM's proxy server.
* ``llama-server``: llama-cpp-python's own OpenAI-compatible server. llama-cpp-python
  itself is installed from lmstream's wheelhouse (the portable AVX2 build that
  ``scripts/bootstrap.sh`` makes, the same binary lmstream's embedded backend runs);
  pip is never allowed to build or fetch it, since the default native build enables AMX
  and crashes here. Then the ``[server]`` extra's dependencies are installed by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PEERS", "Peer", "ensure", "wheelhouse_wheel"]

ROOT = Path(__file__).resolve().parent
VENVS = ROOT / ".venvs"
LLAMA_VERSION = "0.3.36"
# The [server] extra of llama-cpp-python 0.3.36 plus the base dependencies
# (read from the wheel's METADATA).
LLAMA_SERVER_DEPS = (
    "typing-extensions>=4.5.0",
    "numpy>=1.20.0",
    "diskcache>=5.6.1",
    "jinja2>=2.11.3",
    "uvicorn>=0.22.0",
    "fastapi>=0.100.0",
    "pydantic-settings>=2.0.1",
    "sse-starlette>=1.6.1",
    "starlette-context>=0.3.6,<0.4",
    "PyYAML>=5.1",
)
LITELLM_SPEC = "litellm[proxy]"


def wheelhouse_wheel() -> Path:
    house = Path(
        os.environ.get("LMSTREAM_WHEELHOUSE", Path.home() / ".cache" / "lmstream" / "wheels-avx2")
    )
    wheels = sorted(house.glob(f"llama_cpp_python-{LLAMA_VERSION}-*.whl"))
    if not wheels:
        raise RuntimeError(
            f"no llama-cpp-python {LLAMA_VERSION} wheel in {house}: run scripts/bootstrap.sh first"
        )
    return wheels[0]


@dataclass(frozen=True)
class Peer:
    name: str

    @property
    def venv(self) -> Path:
        return VENVS / self.name

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def marker(self) -> Path:
        return self.venv / ".bench-installed"

    def spec(self) -> str:
        if self.name == "litellm":
            return LITELLM_SPEC
        wheel = wheelhouse_wheel()
        return f"{wheel.name}@{wheel.stat().st_size} " + " ".join(LLAMA_SERVER_DEPS)

    def installed(self) -> bool:
        return self.python.exists() and self.marker.exists() and self.marker.read_text() == self.spec()

    def version(self) -> str:
        package = "litellm" if self.name == "litellm" else "llama_cpp_python"
        out = subprocess.run(
            [str(self.python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() or "?"


PEERS = {name: Peer(name) for name in ("litellm", "llama-server")}


def _pip(peer: Peer, *args: str) -> None:
    cmd = [str(peer.python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    print(f"[bench] {' '.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def ensure(name: str) -> Peer:
    """Install the peer ``name`` unless it is already there; return it."""
    peer = PEERS[name]
    if peer.installed():
        return peer
    VENVS.mkdir(parents=True, exist_ok=True)
    if not peer.python.exists():
        print(f"[bench] creating {peer.venv}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(peer.venv)], check=True)
    if name == "litellm":
        _pip(peer, LITELLM_SPEC)
    else:
        # The wheel file only, never an index build: --no-deps --no-index keeps pip from
        # building or fetching llama-cpp-python any other way.
        _pip(peer, "--no-deps", "--no-index", "--force-reinstall", str(wheelhouse_wheel()))
        _pip(peer, *LLAMA_SERVER_DEPS)
    peer.marker.write_text(peer.spec())
    return peer


if __name__ == "__main__":
    for peer_name in sys.argv[1:] or list(PEERS):
        installed = ensure(peer_name)
        print(peer_name, installed.version())
