"""Model backends behind the one ``Backend`` seam (see ``base.py``)."""

from lmstream.backends.base import Backend, BackendContext, EventStream, ModelInfo
from lmstream.backends.registry import available_backends, get_backend_factory, register_backend

__all__ = [
    "Backend",
    "BackendContext",
    "EventStream",
    "ModelInfo",
    "available_backends",
    "get_backend_factory",
    "register_backend",
]
