"""Every error a user can cause, in one place, each carrying the exit code the command line returns.

The command line prints ``mnist-ignite: error: <message>`` for any :class:`MnistIgniteError` and
exits with its ``exit_code``; anything else is a bug and shows its traceback. The families:

* :class:`UsageError` (exit 2): a bad setting, option, file name or model spec; nothing ran.
* :class:`RunFailed` (exit 1): the work started and could not finish (damaged data, a disk that
  filled up, a plugin that raised, a loss that turned NaN).
* :class:`Interrupted` (exit 128 + signal): SIGINT/SIGTERM/SIGHUP stopped a run, which saved its state.

Each class also derives from the builtin it refines (``ValueError``, ``OSError``, ``ImportError``)
where callers and older code expect one.
"""

from __future__ import annotations

import difflib
import errno as _errno
import signal
from collections.abc import Iterable

__all__ = [
    "AssetsError",
    "BatchTooLargeError",
    "BlankDigitError",
    "CheckpointLoadError",
    "ConfigError",
    "DataError",
    "DigitImageError",
    "ExportError",
    "ForcedStop",
    "ImageTooLargeError",
    "Interrupted",
    "LRFindError",
    "MissingExtraError",
    "MnistIgniteError",
    "ModelError",
    "OutOfMemoryError",
    "OutputWriteError",
    "PluginError",
    "PluginLoadError",
    "RankFailed",
    "RunDirError",
    "RunFailed",
    "SpecError",
    "StopTraining",
    "StorageError",
    "UntrustedSpecError",
    "UsageError",
    "did_you_mean",
]


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean X?)`` for the closest of ``choices`` to ``word``, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]}?)" if close else ""


class MnistIgniteError(Exception):
    """Base of the errors a user can cause: one line of text, an exit code."""

    exit_code: int = 1
    label: str = "error"  # the word after "mnist-ignite:" when the command line reports it


class UsageError(MnistIgniteError):
    """The command asked for something impossible; nothing was run (exit 2)."""

    exit_code = 2


class RunFailed(MnistIgniteError):
    """The work started and could not finish (exit 1)."""


# --- usage (exit 2) --------------------------------------------------------------------------


class ConfigError(UsageError, ValueError):
    """A bad setting: a flag, a TOML key, a value outside its rule."""


class SpecError(UsageError, ValueError):
    """A handler or model spec that cannot be found, imported or read."""


class UntrustedSpecError(SpecError):
    """A file (checkpoint, config.json) names code to import that the user never named or trusted."""


class PluginLoadError(UsageError, ValueError):
    """A plugin could not be found, imported, or built with its options."""


class ModelError(ConfigError):
    """A model that cannot be built, or that does not map (B, 1, 28, 28) to (B, 10)."""


class BatchTooLargeError(ModelError):
    """A training batch whose activations do not fit the device's free memory: refused before any data is read."""


class RunDirError(UsageError, ValueError):
    """The output folder holds another run, holds something that is no run, or is in use."""


class MissingExtraError(UsageError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class DigitImageError(UsageError, ValueError):
    """A file is not a readable image, or holds no ink."""


class BlankDigitError(DigitImageError):
    """An image that was read but holds no ink (blank, or of one colour)."""


class ImageTooLargeError(DigitImageError):
    """An image with more pixels than the caller allows (a decompression bomb), refused before decoding."""


# --- the work failed (exit 1) ------------------------------------------------------------------


class DataError(RunFailed):
    """MNIST is missing or damaged; the message says what, where, and how to fix it."""


class CheckpointLoadError(RunFailed):
    """A checkpoint or model file is missing, damaged, or not loadable without unpickling code."""


class OutputWriteError(RunFailed, OSError):
    """Writing an output failed (disk full, read-only, ...); the previous file is untouched."""

    def __init__(self, errno: int | None, message: str) -> None:
        super().__init__(errno if errno is not None else _errno.EIO, message)

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno N]" prefix
        return self.strerror or super().__str__()


class PluginError(RunFailed):
    """An exception raised inside a plugin (its ``attach`` or a handler), naming the plugin and where.

    ``location`` is the innermost line of the plugin's own code in the traceback
    (``boom.py:12 in on_iter``), when there is one.
    """

    def __init__(self, plugin: str, event: str, error: BaseException, location: str = "") -> None:
        at = f" at {location}" if location else ""
        super().__init__(f"handler {plugin!r} failed in {event}{at}: {type(error).__name__}: {error}")
        self.plugin, self.event, self.error, self.location = plugin, event, error, location


class StopTraining(RunFailed):
    """Raised by a plugin to end the run now, with a message and an exit code (e.g. a NaN loss).

    Nothing is saved after it: the last checkpoint stays the last good one.
    """

    label = "stopped"

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RankFailed(RunFailed):
    """One process of a distributed run died (a signal, the OOM killer) or raised; the spawner ended the others.

    ``resumable``: the run folder holds a checkpoint, so the printed resume command continues the run.
    """

    def __init__(self, message: str, output_dir: object, resumable: bool) -> None:
        super().__init__(message if resumable else f"{message}; no checkpoint was saved yet")
        self.output_dir, self.resumable = output_dir, resumable


class OutOfMemoryError(RunFailed):
    """The device ran out of memory during training (a batch the memory check let through, another process)."""


class LRFindError(RunFailed):
    """The lr range test gave no usable curve (the loss never fell before it diverged)."""


class ExportError(RunFailed):
    """The exporter could not write what was asked (e.g. an opset it cannot convert to): nothing is written."""


class StorageError(RunFailed):
    """A sweep's study storage cannot be reached."""


class AssetsError(RunFailed):
    """Visdom's front-end could not be installed."""


# --- interrupted (exit 128 + signal) -----------------------------------------------------------


class ForcedStop(KeyboardInterrupt):
    """A second signal while a run was stopping: it ended at once, without saving (exit 130)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupted(MnistIgniteError):
    """A signal stopped the run after the current iteration; its state was saved and it can resume."""

    def __init__(self, signum: int, output_dir: object) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: stopped after the current iteration; state saved in {output_dir}")
        self.exit_code = 128 + signum
        self.signum = signum
        self.output_dir = output_dir
