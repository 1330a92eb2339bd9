"""Reading TOML files (a run's ``--config``, a sweep file) with one-line errors."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from mnist_ignite.errors import ConfigError


def load_toml(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """A TOML file's tables, with one-line errors that name the file as ``kind`` ("config file", "sweep file")."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{kind} not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{kind} {path} is a directory, not a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{kind} {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{kind} {path} is not valid TOML: {err}") from None
    except OSError as err:
        raise ConfigError(f"cannot read {kind} {path}: {err.strerror or err}") from None


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
