"""The KeyRing tests run on every store, with the store tests' fixtures (tests/store/conftest.py)."""

from __future__ import annotations

from tests.store.conftest import open_store, store, store_kind

__all__ = ["open_store", "store", "store_kind"]
