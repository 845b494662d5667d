"""The HTTP edge: the toolkit every route uses (``extension``, ``state``, ``endpoint``,
``auth``, ``streaming``), one module of routes per dialect, and ``app.create_app``."""
