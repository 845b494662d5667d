"""Errors of the retrieval layer, in the ``errors.LmstreamError`` hierarchy::

    BadRequest (400)
     └── InvalidDocument     400 invalid_document   empty, binary, corrupt, unsupported
          └── DocumentTooLarge 413 document_too_large
    Conflict                 409 conflict           a collection name that is taken

Each message names the file, so a report of a whole directory says which one failed.
"""

from __future__ import annotations

from lmstream.errors import BadRequest, LmstreamError

__all__ = ["Conflict", "DocumentTooLarge", "InvalidDocument"]


class InvalidDocument(BadRequest):
    code = "invalid_document"


class DocumentTooLarge(InvalidDocument):
    status_code = 413
    code = "document_too_large"


class Conflict(LmstreamError):
    status_code = 409
    code = "conflict"
