"""The checkpoint format: file names, what is inside, how it is written, found and read back.

One owner for every reader and writer (the ``checkpoint`` plugin, resume, ``trained``, the NaN
guard, the run folder). A run folder's checkpoints live in ``checkpoints/``:

* ``last_checkpoint_<iteration>.pt``: the whole run, a dict of ``state_dict()``s under
  :data:`KEYS` (``meta`` first: format, model class, spec, arguments, parameter count);
* ``best_model_<epoch>_test_acc=<acc>.pt``: ``{"model": state_dict}`` of the best epoch.

Files are written atomically (temp file, fsync, rename) and read with ``weights_only=True``: a
checkpoint holds tensors, numbers, strings, lists and dicts, never code. Every plugin's state is
checked at save time by a real weights-only round trip, so a state that could not be loaded back
fails at once, naming the plugin, instead of making every checkpoint unloadable.
"""

from __future__ import annotations

import functools
import io
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_ignite.config.settings import RUN_DEFINING, Config
from mnist_ignite.core.files import load_tensors, save_torch
from mnist_ignite.errors import CheckpointLoadError, PluginError
from mnist_ignite.log import warn

if TYPE_CHECKING:
    import torch

__all__ = [
    "CHECKPOINTS",
    "FORMAT",
    "KEYS",
    "Meta",
    "PluginStates",
    "RunSettings",
    "best_name",
    "checkpoint_dir",
    "find_best",
    "find_checkpoints",
    "has_checkpoints",
    "last_name",
    "model_record",
    "read_checkpoint",
    "run_dir_of",
    "saver",
]

CHECKPOINTS = "checkpoints"  # the folder inside a run folder
FORMAT = "mnist-ignite/2"  # meta["format"] of a whole-run checkpoint
LAST_PREFIX, BEST_PREFIX = "last", "best"  # Ignite Checkpoint's filename_prefix
_LAST = re.compile(r"^last_checkpoint_(\d+)\.pt$")
_BEST = re.compile(r"^best_model_(\d+)_test_acc=([0-9.]+)\.pt$")
# what a whole-run checkpoint holds, in the order resume restores it: identity first, so a
# mismatch is reported before anything is overwritten; then the model and the rest
KEYS = (
    "meta",
    "settings",
    "plugins",
    "model",
    "optimizer",
    "trainer",
    "train_metrics",
    "history",
    "grad_scaler",
    "lr_scheduler",
    "checkpointer",
)


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def last_name(iteration: int) -> str:
    return f"last_checkpoint_{iteration}.pt"


def best_name(epoch: int, test_acc: float) -> str:
    return f"best_model_{epoch}_test_acc={test_acc:.4f}.pt"


def run_dir_of(checkpoint: Path) -> Path:
    """The run folder a checkpoint file belongs to (``RUN/checkpoints/x.pt`` -> ``RUN``)."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else checkpoint.parent


def find_checkpoints(folder: Path) -> list[Path]:
    """The ``last_checkpoint_*.pt`` regular files in ``folder``, newest (highest iteration) first.

    A directory or a symlink named like a checkpoint is no checkpoint: resume falls back past it.
    """
    found = [
        (int(m.group(1)), p)
        for p in Path(folder).glob("last_checkpoint_*.pt")
        if (m := _LAST.match(p.name)) and p.is_file() and not p.is_symlink()
    ]
    return [p for _, p in sorted(found, reverse=True)]


def find_best(folder: Path) -> Path | None:
    """The best-model file with the highest test accuracy in ``folder``."""
    found = [(float(m.group(2)), p) for p in Path(folder).glob("best_model_*.pt") if (m := _BEST.match(p.name))]
    return max(found)[1] if found else None


def has_checkpoints(run_dir: Path) -> bool:
    folder = checkpoint_dir(run_dir)
    return folder.is_dir() and any(folder.glob("*.pt"))


def read_checkpoint(path: Path, epoch_length: int | None = None) -> Mapping[str, Any]:
    """A whole-run checkpoint, checked: this tool's format, and (when given) the run's iterations per epoch."""
    state = load_tensors(path)
    meta = state.get("meta") if isinstance(state, Mapping) else None
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
        raise CheckpointLoadError(f"{path} is not an mnist-ignite checkpoint (no '{FORMAT}' header)")
    if epoch_length is not None:
        check_epoch_length(path, state, epoch_length)
    return state


def check_epoch_length(path: Path, state: Mapping[str, Any], epoch_length: int) -> None:
    """A resumed run goes on where it stopped only with the same iterations per epoch."""
    made_with = state.get("trainer", {}).get("epoch_length")
    if made_with != epoch_length:
        raise CheckpointLoadError(
            f"{path} was made with {made_with} iterations per epoch, this run has {epoch_length}: "
            "keep --batch-size, --max-train-samples and --nproc-per-node as they were"
        )


def model_record(state: Any) -> tuple[str, dict[str, Any]] | None:
    """The model spec and arguments a checkpoint records (``meta.spec``, else its ``settings``), if any."""
    if not isinstance(state, Mapping) or not isinstance(state.get("meta"), Mapping):
        return None
    meta = state["meta"]
    if meta.get("spec"):  # meta["model"] is the class name; the spec is recorded as "spec"
        return str(meta["spec"]), dict(meta.get("model_args") or {})
    settings = state.get("settings")
    if isinstance(settings, Mapping) and settings.get("model"):
        return str(settings["model"]), dict(settings.get("model_args") or {})
    return None


@functools.cache
def _saver_class() -> type:
    """``AtomicDiskSaver``, built on first use: Ignite loads when a run starts, not for ``--help``."""
    import ignite.distributed as idist
    from ignite.handlers.checkpoint import BaseSaveHandler

    class AtomicDiskSaver(BaseSaveHandler):
        """Ignite's save-handler interface on :func:`save_torch`: temp file, fsync, rename.

        A crash or a full disk mid-save leaves the previous checkpoint intact. Only the main process writes.
        """

        def __init__(self, dirname: Path) -> None:
            self.dirname = Path(dirname)

        def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
            if idist.get_rank() == 0:
                save_torch(self.dirname / filename, checkpoint)

        def remove(self, filename: str) -> None:
            # a run resumed from another folder inherits a list naming files that are not here
            if idist.get_rank() == 0:
                (self.dirname / filename).unlink(missing_ok=True)

    return AtomicDiskSaver


def saver(folder: Path) -> Any:
    """An Ignite ``BaseSaveHandler`` that writes atomically into ``folder`` (Ignite prunes through it)."""
    return _saver_class()(folder)


class Meta:
    """``meta``: identifies the file as this tool's checkpoint of this model, and how to rebuild it."""

    def __init__(self, model: torch.nn.Module, spec: str, model_args: Mapping[str, Any]) -> None:
        self.model, self.spec, self.model_args = model, spec, dict(model_args)

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": type(self.model).__name__,
            "spec": self.spec,
            "model_args": self.model_args,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mine, theirs = self.state_dict(), dict(state)
        if (theirs.get("model"), theirs.get("parameters")) != (mine["model"], mine["parameters"]):
            args = theirs.get("model_args") or {}
            hint = " ".join(
                [f"--model {theirs.get('spec', '?')}", *(f"--model-arg {k}={v!r}" for k, v in args.items())]
            )
            raise CheckpointLoadError(
                f"the checkpoint holds another model: {_describe(theirs.get('spec', theirs.get('model')), args)} "
                f"({theirs.get('parameters'):,} parameters); this run builds {_describe(self.spec, self.model_args)} "
                f"({mine['parameters']:,} parameters): resume with {hint}"
            )


def _describe(spec: Any, args: Mapping[str, Any]) -> str:
    return f"{spec}" + "".join(f" {k}={v!r}" for k, v in args.items())


class RunSettings:
    """``settings``: what defines the run (:data:`~mnist_ignite.config.settings.RUN_DEFINING`), compared on resume.

    Resuming with other data, batch size, seed, optimizer, pipeline or precision would not
    continue the same run: it is refused with every difference at once, unless ``--resume-force``.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    def state_dict(self) -> dict[str, Any]:
        return {key: getattr(self.config, key) for key in RUN_DEFINING}

    def differences(self, state: dict[str, Any]) -> list[str]:
        """Each run-defining setting that differs from the checkpoint's, as ``flag old -> new``."""
        mine = self.state_dict()
        return [
            f"{k.replace('_', '-')} {state.get(k)!r} -> {mine[k]!r}" for k in mine if k in state and state[k] != mine[k]
        ]

    def load_state_dict(self, state: dict[str, Any], more: list[str] | None = None) -> None:
        """Refuse (or, with ``--resume-force``, warn about) every difference at once: the settings' and ``more``
        (what the plugins say differs, :meth:`PluginStates.differences`)."""
        changed = self.differences(state) + list(more or [])
        if changed and not self.config.resume_force:
            raise CheckpointLoadError(
                "the checkpoint's run was made with other settings (" + "; ".join(changed) + "). "
                "Resume with the same values, or --resume-force to continue anyway "
                "(--epochs, handlers and logging may change on resume)"
            )
        if changed:
            warn(f"resuming with changed settings: {'; '.join(changed)}")


_PLAIN = (int, float, bool, str, bytes, type(None))


def _unsafe_path(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds something other than tensors and plain Python values (exact types: a
    ``numpy.float64`` is a float subclass that ``torch.load(weights_only=True)`` refuses)."""
    import torch

    if type(value) in _PLAIN or isinstance(value, torch.Tensor):
        return None
    if type(value) in (dict, OrderedDict):
        for k, v in value.items():
            if type(k) not in (str, int):
                return f"{path}[{k!r}] (key of type {type(k).__name__})"
            found = _unsafe_path(v, f"{path}[{k!r}]")
            if found:
                return found
        return None
    if type(value) in (list, tuple):
        for i, v in enumerate(value):
            found = _unsafe_path(v, f"{path}[{i}]")
            if found:
                return found
        return None
    return f"{path or 'the state'} (a {type(value).__module__}.{type(value).__qualname__})"


def _round_trips(state: Any) -> str | None:
    """None when ``state`` loads back with ``weights_only=True``; else why not."""
    import torch

    buffer = io.BytesIO()
    try:
        torch.save(state, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, TypeError, AttributeError) as err:
        return " ".join(str(err).split())[:200] or type(err).__name__
    return None


class PluginStates:
    """``plugins``: every stateful plugin's ``state_dict()``, keyed by plugin name.

    Built over the live list of attached plugins, so a checkpoint restored at ``RunEvents.READY``
    gives each plugin its state whatever order they attached in. A state that a weights-only load
    would refuse fails here, at saving time, naming the plugin and the path to the bad value.
    """

    def __init__(self, plugins: list[Any]) -> None:
        self.plugins = plugins

    def _stateful(self) -> dict[str, Any]:
        return {p.name: p for p in self.plugins if callable(getattr(p, "state_dict", None))}

    def state_dict(self) -> dict[str, Any]:
        states = {}
        for name, plugin in self._stateful().items():
            state = plugin.state_dict()
            why = _round_trips(state)  # the authority: what a weights-only load accepts
            if why is not None:
                bad = _unsafe_path(state) or f"the state ({why})"
                raise PluginError(
                    name,
                    "state_dict",
                    TypeError(f"{bad} cannot go in a checkpoint: use tensors, plain numbers, strings, lists and dicts"),
                )
            states[name] = state
        return states

    def differences(self, state: Any) -> list[str]:
        """What the plugins that can tell (``resume_differences(state)``) say differs from their saved state."""
        if not isinstance(state, dict):
            return []
        found: list[str] = []
        for name, plugin in self._stateful().items():
            tell = getattr(plugin, "resume_differences", None)
            if callable(tell) and isinstance(state.get(name), dict):
                found += list(tell(state[name]))
        return found

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stateful = self._stateful()
        for name, plugin_state in state.items():
            if name in stateful:
                stateful[name].load_state_dict(plugin_state)
            else:
                warn(f"the checkpoint holds state of handler {name!r}, which is not enabled: ignored")
