"""Dialects: pure translators between a wire format and the internal types.

Each dialect module parses its request body into a ``ChatRequest``, encodes internal
events into its wire frames (``ServerSentEvent`` for SSE dialects, bytes for NDJSON),
renders the folded ``Completion`` for non-streaming answers, and renders errors in its
own shape. Dialects never do I/O; the routes in ``lmstream.http`` do.
"""
