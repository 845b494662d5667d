"""llama.cpp's own ``llama-server``, built from the llama.cpp that llama-cpp-python
0.3.36 vendors, with the CPU flags lmstream's wheel is built with: the batching anchor.

``python -m bench.native_server`` builds it once into
``~/.cache/lmstream/llama.cpp-<version>/`` (never into the repository) and prints the
binary's path; later calls find it there. The sdist comes from PyPI through pip
(``pip download --no-binary :all:``), the build runs cmake + ninja (or make) on the
vendored tree with ``-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON``
(the default native build enables AMX, which crashes on these CPUs), no web UI download,
no TLS, no tests or examples. About 10-20 minutes on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bench.peers import LLAMA_VERSION

__all__ = ["CMAKE_FLAGS", "binary", "ensure"]

CMAKE_FLAGS = ("-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON")
_BUILD_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
)


def home() -> Path:
    cache = Path(os.environ.get("LMSTREAM_CACHE_DIR", Path.home() / ".cache" / "lmstream"))
    return cache / f"llama.cpp-{LLAMA_VERSION}"


def binary() -> Path:
    return home() / "bin" / "llama-server"


def _marker() -> str:
    return " ".join((*CMAKE_FLAGS, *_BUILD_FLAGS))


def ensure() -> Path:
    """The built ``llama-server`` (building it first if needed)."""
    target, marker = binary(), home() / "bin" / ".flags"
    if target.is_file() and marker.is_file() and marker.read_text() == _marker():
        return target
    source = home() / "src"
    if not (source / "CMakeLists.txt").is_file():
        _unpack_sdist(source)
    build = home() / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run(["cmake", "-S", str(source), "-B", str(build), *generator, *CMAKE_FLAGS, *_BUILD_FLAGS])
    _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(os.cpu_count() or 2)])
    built = next(build.rglob("llama-server"), None)
    if built is None or not built.is_file():
        raise RuntimeError(f"the build produced no llama-server under {build}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, target)
    marker.write_text(_marker())
    return target


def _unpack_sdist(source: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="llama-sdist-") as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
              f"llama-cpp-python=={LLAMA_VERSION}", "-d", tmp])  # fmt: skip
        archive = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        prefix = f"llama_cpp_python-{LLAMA_VERSION}/vendor/llama.cpp/"
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            for member in members:
                member.name = member.name[len(prefix) :]
            tar.extractall(source, members=[m for m in members if m.name], filter="data")


def _run(cmd: list[str]) -> None:
    print(f"[bench] {' '.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    print(ensure())
