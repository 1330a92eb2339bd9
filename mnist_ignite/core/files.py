"""Crash-safe file writes and safe checkpoint reads.

Every artifact is written to a temp file in the target folder, fsynced, then renamed over the
old one: a crash mid-write leaves the previous file intact, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mnist_ignite.errors import CheckpointLoadError, OutputWriteError

__all__ = [
    "CheckpointLoadError",
    "OutputWriteError",
    "atomic_write",
    "export_kind",
    "load_tensors",
    "prepare_output_dir",
    "refusal_reason",
    "save_json",
    "save_torch",
]


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _file_mode()  # what open() would give: mkstemp's 0600 would hide outputs from other users


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, fsync, rename it to ``path``."""
    path = Path(path)
    fd, tmp = None, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            fd = None
            write(f)
            f.flush()
            os.fchmod(f.fileno(), _MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise OutputWriteError(err.errno, f"cannot write {path}: {reason}; the previous file is unchanged") from err
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def prepare_output_dir(path: str | os.PathLike) -> Path:
    """Create the run folder and prove it is writable, before any training starts."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputWriteError(errno.ENOTDIR, f"cannot use {path} as the output folder: it is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise OutputWriteError(err.errno, f"cannot use {path} as the output folder: {err.strerror or err}") from None
    return path


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    data = (json.dumps(obj, indent=2) + "\n").encode()
    return atomic_write(path, lambda f: f.write(data))


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically ``torch.save`` ``obj`` (tensors, numbers, strings, lists, dicts only).

    Serialized in memory first: torch's zip writer reports a full disk as a bare RuntimeError
    ("unexpected pos"), while a plain write reports ENOSPC, which becomes "the disk is full".
    """
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getbuffer()
    return atomic_write(path, lambda f: f.write(data))


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6


def export_kind(path: str | os.PathLike) -> str | None:
    """``"torchscript"`` or ``"exported-program"`` when ``path`` is such an archive (by its contents, not
    its name), else None. Both are zip archives like a checkpoint, but hold code or a graph, not a state."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    with contextlib.suppress(zipfile.BadZipFile, OSError), zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if any("/code/" in name for name in names):
            return "torchscript"
        if any(name.endswith("/archive_format") for name in names):
            return "exported-program"
    return None


def refusal_reason(err: BaseException) -> str:
    """What a weights-only load refused, in a few words: torch's ``Unsupported global: ...`` line when it has one."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    named = [line for line in lines if "Unsupported global" in line or "GLOBAL " in line]
    return (named or lines or ["unsupported object"])[0][:200]


def load_tensors(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)``: refuses pickled code; clear errors for damaged files.

    The file is sniffed first (a PyTorch file is a zip archive) and memory-mapped rather than
    read whole, so a huge or random file costs neither time nor memory.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise CheckpointLoadError(f"checkpoint {path} is not a regular file (a folder, FIFO or device): not read")
    if not path.is_file():
        raise CheckpointLoadError(f"checkpoint not found: {path}")
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as err:
        raise CheckpointLoadError(f"cannot read {path}: {err.strerror or err}") from None
    if head == _ZIP_MAGIC and (kind := export_kind(path)):
        raise CheckpointLoadError(f"{path} is an exported model ({kind}), not a checkpoint or a model's state_dict")
    if head != _ZIP_MAGIC:
        raise CheckpointLoadError(f"checkpoint {path} is damaged or not a PyTorch file (no zip header)")
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        raise CheckpointLoadError(
            f"refused to load {path}: it holds objects that only a full unpickle could rebuild "
            f"(code could run), and this tool loads tensors only ({refusal_reason(err)})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise CheckpointLoadError(f"checkpoint {path} is damaged or not a PyTorch file: {err}") from None
