"""The HTTP edge: the app factory, auth, and one module of routes per dialect."""

from lmstream.http.app import create_app

__all__ = ["create_app"]
