"""The run folder: its layout, and claiming it — never another run's, one process at a time, no debris.

Layout: the core writes :data:`CORE_OUTPUTS` (``config.json``, ``results.json``, ``final_model.pt``,
the lr finder's files); every plugin declares what it writes as ``outputs`` (:class:`Output`).
The footer lists and ``--overwrite`` removes exactly those, so a new handler needs no change here.

Claiming (:class:`RunDir`): a folder that holds run files is refused unless the run resumes it
(``--resume``) or the user says ``--overwrite``. ``--overwrite`` acts only on a folder whose
``config.json`` is an mnist-ignite run's, and removes only what that run's core and handlers
declare (inside their folders only their own files), so ``--resume auto`` cannot pick up the old
run's checkpoints and nothing of the user's is lost. Leftover ``.*.tmp`` files of writes cut short
(``kill -9``) are removed when a folder is claimed. An OS lock (``fcntl.flock`` on
``.mnist-ignite.lock``) stops a second process from writing into a folder in use; the kernel
drops it when the process dies, even by ``kill -9``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from mnist_ignite.errors import OutputWriteError, PluginLoadError, RunDirError
from mnist_ignite.log import note
from mnist_ignite.plugins.api import Output

__all__ = [
    "CONFIG",
    "CORE_OUTPUTS",
    "FINAL_MODEL",
    "LOCK",
    "RESULTS",
    "RunDir",
    "holds_run",
    "outputs_of",
    "read_run_config",
    "read_run_results",
    "written",
]

CONFIG, RESULTS, FINAL_MODEL = "config.json", "results.json", "final_model.pt"
LOCK = ".mnist-ignite.lock"
CORE_OUTPUTS = (
    Output(CONFIG, "the resolved settings"),
    Output(RESULTS, "final and best test accuracy, times"),
    Output(FINAL_MODEL, "the model's weights (a state_dict)"),
    Output("lr_find.json", "--lr auto: the lr finder's curve"),
    Output("lr_find.png", "--lr auto: the lr finder's plot"),
)
# keys every mnist-ignite run's config.json has (newer settings may be missing from older runs)
_RUN_KEYS = {"model", "epochs", "batch_size", "lr", "handlers"}


def _json_object(path: Path) -> dict[str, Any] | None:
    """A small JSON file holding an object, or None (absent, huge, half-written, not an object)."""
    try:
        if not path.is_file() or path.stat().st_size > 1_000_000:
            return None
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return values if isinstance(values, dict) else None


def read_run_config(folder: Path) -> dict[str, Any] | None:
    """The folder's ``config.json`` if it is an mnist-ignite run's, else None."""
    values = _json_object(Path(folder) / CONFIG)
    return values if values is not None and set(values) >= _RUN_KEYS else None


def read_run_results(folder: Path) -> dict[str, Any] | None:
    """The folder's ``results.json`` (what came of the run) if it is a readable JSON object, else None."""
    return _json_object(Path(folder) / RESULTS)


def holds_run(folder: Path) -> bool:
    return read_run_config(folder) is not None


def outputs_of(plugins: Iterable[Any]) -> list[Output]:
    """What the core and these plugins write into a run folder."""
    found = list(CORE_OUTPUTS)
    for plugin in plugins:
        found += [o for o in getattr(plugin, "outputs", ()) if o not in found]
    return found


def _declared_by(handlers: Sequence[str]) -> tuple[list[Output], list[str]]:
    """Outputs of handlers named in an old run's config.json; and the names that cannot be loaded now."""
    from mnist_ignite.discovery.handlers import load_plugin_class

    outputs, missing = [], []
    for spec in handlers:
        try:
            outputs += list(getattr(load_plugin_class(spec), "outputs", ()))
        except PluginLoadError:
            missing.append(spec)
    return outputs, missing


def written(folder: Path, outputs: Iterable[Output]) -> list[tuple[Output, Path]]:
    """The declared outputs that exist in ``folder``, in declaration order."""
    return [(o, Path(folder) / o.name) for o in outputs if (Path(folder) / o.name).exists()]


def _remove_stale_temps(folder: Path, outputs: Iterable[Output]) -> None:
    """``.NAME.*.tmp`` files of atomic writes a ``kill -9`` cut short (the folder is locked: none is in use)."""
    places = [folder, *(folder / o.name for o in outputs if o.is_folder)]
    for place in places:
        for tmp in place.glob(".*.tmp") if place.is_dir() else ():
            with contextlib.suppress(OSError):
                tmp.unlink()


class RunDir:
    """Claims ``path`` for one run: checks it, locks it, and removes it again if the run never started.

    Args:
        path: the run folder.
        resume: the run continues what the folder holds.
        overwrite: the run replaces what the folder holds (an mnist-ignite run's files only).
        outputs: what this run writes (:func:`outputs_of` its plugins): a folder holding any of
            them holds a run.
    """

    def __init__(
        self, path: str | os.PathLike, resume: bool, overwrite: bool, outputs: Sequence[Output] = CORE_OUTPUTS
    ) -> None:
        self.path = Path(path)
        self.resume, self.overwrite = resume, overwrite
        self.outputs = list(outputs)
        self.created = False
        self.lock: IO[str] | None = None

    def existing_run_files(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return [o.name for o, _ in written(self.path, self.outputs)]

    def claim(self) -> Path:
        """Check, create and lock the folder; raises :class:`RunDirError` or :class:`OutputWriteError`."""
        if self.path.exists() and not self.path.is_dir():
            raise OutputWriteError(None, f"cannot use {self.path} as the output folder: it is a file")
        found = self.existing_run_files()
        if found and not (self.resume or self.overwrite):
            raise RunDirError(
                f"{self.path} already holds a run ({', '.join(found)}): "
                "--resume auto continues it, --overwrite replaces it, or choose another --output-dir"
            )
        old = read_run_config(self.path) if found and self.overwrite and not self.resume else None
        if found and self.overwrite and not self.resume and old is None:
            raise RunDirError(
                f"{self.path} holds {', '.join(found)} but no mnist-ignite run (its config.json is missing or is "
                "not a run's): --overwrite replaces only a run's own files; choose another --output-dir"
            )
        try:
            self.created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            self.lock = open(self.path / LOCK, "a+")  # noqa: SIM115 - held for the whole run
        except OSError as err:
            raise OutputWriteError(
                err.errno, f"cannot use {self.path} as the output folder: {err.strerror or err}"
            ) from None
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock.close()
            self.lock = None
            raise RunDirError(
                f"{self.path} is in use by another mnist-ignite process; wait for it or use another --output-dir"
            ) from None
        if old is not None:
            declared, missing = _declared_by([str(h) for h in old.get("handlers") or ()])
            if missing:
                note(f"--overwrite: the old run's handler(s) {', '.join(missing)} cannot be loaded: their files stay")
            for output in outputs_of([]) + declared + self.outputs:
                self._remove(output)
        _remove_stale_temps(self.path, self.outputs)
        return self.path

    def _remove(self, output: Output) -> None:
        """Remove an output, or inside a declared folder the output's own files (the folder too, once empty)."""
        target = self.path / output.name
        if not target.exists() and not target.is_symlink():
            return
        if not output.is_folder or not target.is_dir():
            if target.is_dir() and not target.is_symlink():
                return  # a folder where a file was declared is not ours to remove
            target.unlink()
            return
        for pattern in (*output.files, ".*.tmp"):
            for item in target.glob(pattern):
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        if not any(target.iterdir()):
            target.rmdir()

    def release(self, started: bool) -> None:
        """Unlock; a folder this run created and never started training in is removed again."""
        if self.lock is None:
            return
        self.lock.close()
        self.lock = None
        if self.created and not started:  # nothing was trained: nothing worth keeping
            shutil.rmtree(self.path, ignore_errors=True)
