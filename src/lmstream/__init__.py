"""lmstream: stream a language model's answer token by token to every kind of client.

The package is a library first (``create_app``, the ``Backend`` seam, the stream hub)
and a CLI on top (``lmstream serve``, ``lmstream chat``). See ARCHITECTURE.md.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
