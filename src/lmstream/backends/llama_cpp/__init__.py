"""``llama_cpp``: the embedded backend, a GGUF model run in-process through llama.cpp.

Several requests are decoded at once (continuous batching): each is a sequence with its
own KV slot and sampler in one shared context, and one decode loop on one worker thread
builds every step from all of them. The parts, each replaceable on its own:

=================  ==========================================================================
``backend.py``     ``LlamaCppBackend``: the ``Backend`` seam; ``open()`` and the event stream
``admission.py``   slots and the FIFO line (``Queued``, 503 + ``Retry-After``), interactive first
``engine.py``      the worker thread and its decode loop (batches, sampling, cancellation)
``schedule.py``    what each step decodes: generating tokens, prompt chunks, interactive first
``sequence.py``    one request inside the engine: tokens, limits, events it makes
``slots.py``       which KV slot a sequence takes; finished sequences' cells as a prefix cache
``sampling.py``    ``SamplingParams`` (grammar, bias, logprobs) → a per-sequence sampler
``decoding.py``    token ids → whole UTF-8 characters → stop sequences; logprobs per delta
``prompt.py``      request → prompt text (chat template or transcript) → tokens
``model.py``       the loaded GGUF: vocabulary, metadata, llama.cpp's log routing
=================  ==========================================================================

Deliberate divergences from ``Llama.create_completion``: sampling uses llama.cpp's
defaults for unset knobs (top_k 40, top_p 0.95, min_p 0.05, temperature 0.8) with no
repeat penalty; ``max_tokens`` defaults to ``DEFAULT_MAX_TOKENS`` (``admit`` applies it;
configurable per model and globally), capped by the rest of the context window; a
generation cut mid-character drops the incomplete bytes instead of emitting U+FFFD; the
transcript's stop sequences are lmstream's own, so text that could still become one is
never released when the answer ends; a structured answer has no transcript stops (its
grammar decides where it ends).
"""

from lmstream.backends.llama_cpp.backend import LlamaCppBackend, is_background
from lmstream.backends.llama_cpp.decoding import TokenDecoder
from lmstream.backends.llama_cpp.prompt import render_chat_template
from lmstream.backends.llama_cpp.sampling import SamplingParams

__all__ = ["LlamaCppBackend", "SamplingParams", "TokenDecoder", "is_background", "render_chat_template"]
