"""The loaded GGUF: weights, vocabulary and metadata, through llama.cpp's C API.

The model (weights, vocabulary) is read-only once loaded, so tokenizing and reading
token text are safe from any thread; everything that uses a *context* (KV cache,
decoding, sampling) belongs to the engine's one worker thread (``engine.py``).
llama.cpp's own log lines go to Python logging (``lmstream.llama_cpp``, debug).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path
from typing import Any

import llama_cpp

__all__ = ["Model"]

_llama_log = logging.getLogger("lmstream.llama_cpp")


def _log_llama(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    if _llama_log.isEnabledFor(logging.DEBUG):
        _llama_log.debug("%s", text.decode(errors="replace").rstrip())


_route_llama_log = llama_cpp.llama_log_callback(_log_llama)  # kept alive: C holds a pointer
llama_cpp.llama_log_set(_route_llama_log, ctypes.c_void_p(0))

_backend_lock = threading.Lock()
_backend_ready = False

_QUANTIZATION: dict[int, str] = {
    value: name.removeprefix("LLAMA_FTYPE_MOSTLY_").removeprefix("LLAMA_FTYPE_ALL_")
    for name, value in vars(llama_cpp).items()
    if name.startswith(("LLAMA_FTYPE_MOSTLY_", "LLAMA_FTYPE_ALL_")) and isinstance(value, int)
}


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True


class Model:
    """A GGUF loaded with llama.cpp (mmap'd, CPU). ``close()`` frees it."""

    def __init__(self, path: Path) -> None:
        _init_backend()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        pointer = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not pointer:
            raise RuntimeError(f"llama.cpp could not load the model {path}")
        self.path = path
        self.pointer: Any = pointer
        self.vocab: Any = llama_cpp.llama_model_get_vocab(pointer)
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train: int = llama_cpp.llama_model_n_ctx_train(pointer)
        self.metadata = self._read_metadata()
        self.chat_template: str | None = self.metadata.get("tokenizer.chat_template") or None
        self.bos_text = self.token_text(llama_cpp.llama_vocab_bos(self.vocab))
        self.eos_text = self.token_text(llama_cpp.llama_vocab_eos(self.vocab))

    def close(self) -> None:
        pointer, self.pointer = self.pointer, None
        if pointer:
            llama_cpp.llama_model_free(pointer)

    # Vocabulary ------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 2  # never more tokens than bytes, plus BOS/EOS
        tokens = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, size, add_bos, special)
        if n < 0:
            raise RuntimeError(f"llama.cpp could not tokenize {len(data)} bytes ({n})")
        return list(tokens[:n])

    def token_text(self, token: int) -> str:
        """A token's text as the vocabulary spells it ("" for none)."""
        if token < 0:
            return ""
        text: bytes = llama_cpp.llama_vocab_get_text(self.vocab, token)
        return text.decode("utf-8", errors="replace")

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    # Metadata --------------------------------------------------------------------------

    def details(self) -> dict[str, Any]:
        """``ModelInfo.details``: what the GGUF says about itself."""
        metadata = self.metadata
        details: dict[str, Any] = {"format": "gguf", "path": str(self.path)}
        if "general.architecture" in metadata:
            details["family"] = metadata["general.architecture"]
        if "general.size_label" in metadata:
            details["parameter_size"] = metadata["general.size_label"]
        file_type = metadata.get("general.file_type", "")
        if file_type.isdigit() and int(file_type) in _QUANTIZATION:
            details["quantization_level"] = _QUANTIZATION[int(file_type)]
        details["chat_template"] = self.chat_template is not None
        return details

    def _read_metadata(self) -> dict[str, str]:
        metadata: dict[str, str] = {}
        size = 1024
        buffer = ctypes.create_string_buffer(size)

        def read(function: Any, index: int) -> str:
            nonlocal buffer, size
            n = function(self.pointer, index, buffer, size)
            if n >= size:  # truncated: grow and read again
                size = n + 1
                buffer = ctypes.create_string_buffer(size)
                n = function(self.pointer, index, buffer, size)
            return bytes(buffer.raw[: max(0, n)]).decode("utf-8", errors="replace")

        for index in range(llama_cpp.llama_model_meta_count(self.pointer)):
            key = read(llama_cpp.llama_model_meta_key_by_index, index)
            metadata[key] = read(llama_cpp.llama_model_meta_val_str_by_index, index)
        return metadata
