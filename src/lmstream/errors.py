"""Errors raised before the first byte of a response, mapped to HTTP by each dialect.

    LmstreamError                 500 internal_error
     ├── BadRequest               400 invalid_request
     │    └── ContextLengthExceeded 400 context_length_exceeded
     │    ├── PayloadTooLarge      413 payload_too_large
     │    ├── UnsupportedMediaType 415 unsupported_media_type
     │    └── HeadersTooLarge      431 headers_too_large
     ├── Unauthorized             401 unauthorized
     ├── Forbidden                403 forbidden
     ├── RequestTimeout           408 request_timeout
     ├── NotFound                 404 not_found
     │    ├── ModelNotFound       404 model_not_found
     │    └── ToolNotFound        404 tool_not_found
     ├── RateLimited              429 rate_limited (with Retry-After)
     ├── Overloaded               503 overloaded (with Retry-After)
     ├── StoreUnavailable         503 store_unavailable (the conversation database is unreachable)
     ├── UpstreamError            502 upstream_error
     │    └── UpstreamTimeout     504 upstream_timeout
     ├── ToolFailed               500 tool_error       (a server-side tool raised)
     └── ToolTimeout              504 tool_timeout     (... or ran past its time)

After the first byte, the same failures travel as ``events.Error(code=...)`` with the
``code`` below, and each dialect renders its own error event.
"""

from __future__ import annotations

__all__ = [
    "ERROR_CODES",
    "BadRequest",
    "ContextLengthExceeded",
    "Forbidden",
    "HeadersTooLarge",
    "LmstreamError",
    "ModelNotFound",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RateLimited",
    "RequestTimeout",
    "StoreUnavailable",
    "ToolFailed",
    "ToolNotFound",
    "ToolTimeout",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "error_from_code",
]


class LmstreamError(Exception):
    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class BadRequest(LmstreamError):
    status_code = 400
    code = "invalid_request"


class ContextLengthExceeded(BadRequest):
    code = "context_length_exceeded"


class PayloadTooLarge(BadRequest):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(BadRequest):
    status_code = 415
    code = "unsupported_media_type"


class HeadersTooLarge(BadRequest):
    status_code = 431
    code = "headers_too_large"


class Unauthorized(LmstreamError):
    status_code = 401
    code = "unauthorized"


class Forbidden(LmstreamError):
    status_code = 403
    code = "forbidden"


class RequestTimeout(LmstreamError):
    status_code = 408
    code = "request_timeout"


class NotFound(LmstreamError):
    status_code = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class ToolNotFound(NotFound):
    code = "tool_not_found"


class ToolFailed(LmstreamError):
    code = "tool_error"


class ToolTimeout(LmstreamError):
    status_code = 504
    code = "tool_timeout"


class Overloaded(LmstreamError):
    status_code = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(LmstreamError):
    """A key's limit (requests or tokens per minute, concurrent streams) is reached."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(LmstreamError):
    """The conversation store cannot reach its database; the message says which one
    (host, port, name — never a password) and why."""

    status_code = 503
    code = "store_unavailable"


class UpstreamError(LmstreamError):
    status_code = 502
    code = "upstream_error"

    def __init__(self, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"


ERROR_CODES: dict[str, int] = {
    cls.code: cls.status_code
    for cls in (
        LmstreamError,
        BadRequest,
        ContextLengthExceeded,
        PayloadTooLarge,
        UnsupportedMediaType,
        HeadersTooLarge,
        Unauthorized,
        Forbidden,
        RequestTimeout,
        NotFound,
        ModelNotFound,
        RateLimited,
        Overloaded,
        StoreUnavailable,
        UpstreamError,
        UpstreamTimeout,
        ToolNotFound,
        ToolFailed,
        ToolTimeout,
    )
}


def error_from_code(code: str, message: str) -> LmstreamError:
    """The error an ``events.Error(code=...)`` stands for (non-streaming answers)."""
    error = LmstreamError(message)
    error.code = code
    error.status_code = ERROR_CODES.get(code, 500)
    return error
