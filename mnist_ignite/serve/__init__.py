"""A trained model served over HTTP: a draw-a-digit page and a prediction API (``mnist-ignite serve``).

``app.py`` is the ASGI app (FastAPI): the page, ``POST /predict``, ``GET /model``, ``GET /health``
and offline API docs; ``server.py`` runs it under uvicorn and stops it cleanly on a signal. Both
need the ``serve`` extra; :func:`require_extra` says so in one line before either is imported.
"""

from __future__ import annotations

import importlib.util

from mnist_ignite.errors import MissingExtraError

__all__ = ["EXTRA", "require_extra"]

# module -> the package that installs it, all in `pip install 'mnist-ignite[serve]'`
EXTRA = {
    "fastapi": "fastapi",
    "fastapi_offline": "fastapi-offline",
    "uvicorn": "uvicorn",
    "python_multipart": "python-multipart",
}


def require_extra() -> None:
    """Raise :class:`MissingExtraError` naming the extra when a package the server needs is missing."""
    missing = [package for module, package in EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingExtraError(f"serving needs {', '.join(missing)}: pip install 'mnist-ignite[serve]'")
