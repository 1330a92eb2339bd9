"""Finding user code by a spec: a registered ``NAME``, ``package.module:Attr`` or ``path/to/file.py:Attr``.

Handlers (entry-point group ``mnist_ignite.handlers``) and models (``mnist_ignite.models``) are
found the same way. A spec that cannot be found, imported or read is a :class:`SpecError`, a
usage error with one line that names the spec (and a "did you mean" for near-miss names).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnist_ignite.errors import SpecError, did_you_mean

__all__ = ["SpecError", "check_name", "registered", "resolve"]


def registered(builtins: Mapping[str, str], group: str) -> dict[str, str]:
    """Name -> ``module:attr`` for built-ins and installed entry points of ``group`` (entry points win)."""
    found = dict(builtins)
    for ep in importlib.metadata.entry_points(group=group):
        found[ep.name] = ep.value
    return found


def check_name(spec: str, known: Mapping[str, str], kind: str, whole_file: bool = False) -> None:
    """Refuse a name that is neither registered nor a ``module:Attr`` / ``file.py:Attr`` spec
    (nor, where ``whole_file``, a bare ``file.py``)."""
    if spec in known or ":" in spec or (whole_file and spec.endswith(".py")):
        return
    forms = "module:Attr, file.py:Attr, file.py" if whole_file else "module:Attr, file.py:Attr"
    raise SpecError(
        f"unknown {kind} {spec!r}{did_you_mean(spec, known)}; available: {', '.join(sorted(known))} (or {forms})"
    )


def _import_file(path: Path, prefix: str) -> Any:
    name = f"mnist_ignite_{prefix}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def resolve(spec: str, known: Mapping[str, str], kind: str, whole_file: bool = False) -> Any:
    """The object ``spec`` names (a registered name, ``module:Attr`` or ``file.py:Attr``); where
    ``whole_file``, a bare ``file.py`` names the module itself (its caller picks the one thing in it)."""
    check_name(spec, known, kind, whole_file)
    target = known.get(spec, spec)
    where, _, attr = target.rpartition(":")
    if whole_file and not where and target.endswith(".py"):
        where, attr = target, ""
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise SpecError(f"{kind} {spec!r}: file not found: {path}")
            module = _import_file(path, kind.replace(" ", "_"))
        else:
            module = importlib.import_module(where)
    except SpecError:
        raise
    except Exception as err:  # any import-time failure of third-party code
        raise SpecError(f"{kind} {spec!r}: cannot import {where}: {type(err).__name__}: {err}") from None
    if not attr:
        return module
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SpecError(f"{kind} {spec!r}: {where} has no attribute {attr!r}") from None
