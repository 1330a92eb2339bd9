"""The run folder: never take over another run's folder, one process at a time, no debris from failed starts.

A folder "holds a run" when it has any of the files a run writes (``config.json``, ``metrics.json``,
``final_model.pt``, ``checkpoints/``, ...). Such a folder is refused unless the run resumes it
(``--resume``) or the user says ``--overwrite`` (the old run's files are then removed first, so a
later ``--resume auto`` cannot pick up the old run's checkpoints). Files a run does not write are
never touched. An OS lock (``fcntl.flock`` on ``.mnist-ignite.lock``) stops a second process from
writing into a folder in use; the kernel drops it when the process dies, even by ``kill -9``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import IO

from mnist_ignite.errors import OutputWriteError, RunDirError

__all__ = ["RUN_FILES", "RunDir", "RunDirError"]

# everything a run (with any built-in handler) writes into its folder
RUN_FILES = (
    "config.json",
    "metrics.json",
    "metrics.csv",
    "final_model.pt",
    "results.json",
    "summary.json",
    "checkpoints",
    "plots",
    "visdom.log",
    "tensorboard",
    "mlflow.db",
    "mlartifacts",
    "lr_find.json",
    "lr_find.png",
)
LOCK = ".mnist-ignite.lock"
# inside the run's folders, the files a run writes (anything else there is the user's and stays)
OWN_FILES = {
    "checkpoints": ("last_checkpoint_*.pt", "best_*.pt", ".*.tmp"),
    "plots": ("samples.png", "metrics.png", "misclassified.png", "confusion_matrix.png", ".*.tmp"),
    "tensorboard": ("events.out.tfevents.*",),
    "mlartifacts": ("*",),
}


class RunDir:
    """Claims ``path`` for one run: checks it, locks it, and removes it again if the run never started."""

    def __init__(self, path: str | os.PathLike, resume: bool, overwrite: bool) -> None:
        self.path = Path(path)
        self.resume, self.overwrite = resume, overwrite
        self.created = False
        self.lock: IO[str] | None = None

    def existing_run_files(self) -> list[str]:
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def claim(self) -> Path:
        """Check, create and lock the folder; raises :class:`RunDirError` or :class:`OutputWriteError`."""
        found = self.existing_run_files() if self.path.is_dir() else []
        if found and not (self.resume or self.overwrite):
            raise RunDirError(
                f"{self.path} already holds a run ({', '.join(found)}): "
                "--resume auto continues it, --overwrite replaces it, or choose another --output-dir"
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
        if found and self.overwrite and not self.resume:
            for name in found:
                self._remove(self.path / name)
        return self.path

    @staticmethod
    def _remove(target: Path) -> None:
        """Remove a run file, or the run's own files in a run folder (the folder too, once empty)."""
        if not target.is_dir():
            target.unlink()
            return
        for pattern in OWN_FILES.get(target.name, ("*",)):
            for item in target.glob(pattern):
                shutil.rmtree(item) if item.is_dir() else item.unlink()
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
