"""Reading TOML files (a run's ``--config``, a sweep file) with one-line errors, and bounded reads.

A file is read only when it is a regular file of a sane size: a FIFO or a device (``--config
/dev/zero``) would block or never end, so it is refused before it is opened.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from mnist_ignite.errors import ConfigError

__all__ = ["MAX_CONFIG_BYTES", "load_toml", "read_text_file", "read_toml"]


MAX_CONFIG_BYTES = 1_000_000  # a run or sweep file is a few hundred bytes


def read_text_file(path: str | os.PathLike, kind: str, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` (at most ``max_bytes``), with one-line errors naming it ``kind``.

    Raises:
        ConfigError: missing, a folder, not a regular file (FIFO, device), too large, unreadable, not UTF-8.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{kind} not found: {path}") from None
    except OSError as err:
        raise ConfigError(f"cannot read {kind} {path}: {err.strerror or err}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{kind} {path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{kind} {path} is not a regular file (a FIFO, socket or device): refusing to read it")
    if info.st_size > max_bytes:
        raise ConfigError(f"{kind} {path} is {info.st_size:,} bytes: more than a {kind} holds (limit {max_bytes:,})")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise ConfigError(f"cannot read {kind} {path}: {err.strerror or err}") from None
    if len(data) > max_bytes:  # it grew while being read
        raise ConfigError(f"{kind} {path} is more than {max_bytes:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{kind} {path} is not UTF-8 text") from None


def load_toml(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """A TOML file's tables, with one-line errors that name the file as ``kind`` ("config file", "sweep file")."""
    text = read_text_file(path, kind)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{kind} {path} is not valid TOML: {err}") from None


def read_toml(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Read a run file: (top-level settings, ``[handler]`` tables), keys with ``-`` or ``_``.

    A key written both ways (``batch-size`` and ``batch_size``) is an error, not a silent merge.
    """
    data = load_toml(path, "config file")

    def normalize(table: dict[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in table.items():
            k = key.replace("-", "_")
            if k in out:
                raise ConfigError(f"{path}: {where}{key!r} is set twice (as '-' and '_' spellings)")
            out[k] = value
        return out

    top = normalize({k: v for k, v in data.items() if not isinstance(v, dict)}, "")
    tables = {name: normalize(v, f"[{name}] ") for name, v in data.items() if isinstance(v, dict)}
    return top, tables
