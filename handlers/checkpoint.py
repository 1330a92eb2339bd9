"""Checkpoints with Ignite's ``Checkpoint`` + ``DiskSaver``, and resume.

Saved every epoch (and every ``--checkpoint-every-iters`` iterations, and when a run is stopped
by a signal or a time limit) to OUTPUT/checkpoints/last_checkpoint_<iteration>.pt, keeping the
last 2: model, optimizer, trainer state, lr scheduler, epoch metrics, history and every plugin's
``state_dict()``. The best model by test accuracy goes to best_model_<epoch>_test_acc=<acc>.pt.
Files are written atomically with fsync and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import functools
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_ignite.core.files import load_tensors, save_torch
from mnist_ignite.errors import CheckpointLoadError
from mnist_ignite.plugins import Option, Plugin, RunContext

if TYPE_CHECKING:  # Ignite and torch load when a run starts, not for --help
    import torch
    from ignite.engine import Engine

__all__ = ["CheckpointPlugin", "find_checkpoints", "find_latest"]  # and AtomicDiskSaver, built on first use

FORMAT = "mnist-ignite/2"
_LAST = re.compile(r"^last_checkpoint_(\d+)\.pt$")


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


def __getattr__(name: str) -> Any:
    if name == "AtomicDiskSaver":
        return _saver_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Meta:
    """Identifies the file as this tool's checkpoint of this model, and how to rebuild it (spec + arguments)."""

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


def find_checkpoints(directory: Path) -> list[Path]:
    """The ``last_checkpoint_*.pt`` files in ``directory``, newest (highest iteration) first."""
    found = [(int(m.group(1)), p) for p in directory.glob("last_checkpoint_*.pt") if (m := _LAST.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def find_latest(directory: Path) -> Path | None:
    """The ``last_checkpoint_*.pt`` with the highest iteration in ``directory``."""
    found = find_checkpoints(directory)
    return found[0] if found else None


class CheckpointPlugin(Plugin):
    """Save and restore the whole run: every checkpoint object the core and the plugins registered."""

    name = "checkpoint"
    description = "checkpoints (last 2 + best by test accuracy), --resume auto|PATH, weights-only loading"
    options = (
        Option("checkpoint-every-iters", int, 0, "also save every N iterations mid-epoch (0 = epoch ends only)"),
        Option("keep-last", int, 2, "how many recent checkpoints to keep"),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.checkpoint_every_iters < 0 or self.keep_last < 1:
            raise ValueError("checkpoint-every-iters must be >= 0 and keep-last >= 1")
        self.last: Any = None  # ignite.handlers.Checkpoint objects, built at READY
        self.best: Any = None

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best.state_dict() if self.best else {"saved": []}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.best is not None:
            self.best.load_state_dict(state["best"])

    def attach(self, ctx: RunContext) -> None:
        from ignite.engine import Events

        from mnist_ignite.plugins.events import RunEvents

        self.ctx = ctx
        self.directory = ctx.output_dir / "checkpoints"
        if ctx.is_main_process:
            self.directory.mkdir(parents=True, exist_ok=True)
        trainer = ctx.trainer
        trainer.add_event_handler(RunEvents.READY, self._setup)
        # RunEvents.EPOCH_END: after every plugin's EPOCH_COMPLETED handler (early stopping's counter,
        # the history row...), so the saved epoch is complete
        trainer.add_event_handler(RunEvents.EPOCH_END, self._save_last)
        trainer.add_event_handler(RunEvents.EPOCH_END, self._save_best)
        trainer.add_event_handler(Events.TERMINATE, self._save_last)
        every = self.checkpoint_every_iters
        if every:  # epoch ends are saved at EPOCH_END, after the evaluation and the history row
            mid_epoch = Events.ITERATION_COMPLETED(
                event_filter=lambda e, i: i % every == 0 and i % e.state.epoch_length != 0
            )
            trainer.add_event_handler(mid_epoch, self._save_last)

    def _setup(self, engine: Engine) -> None:
        """At READY every plugin has attached: save everything registered in ``ctx.checkpoint_objects``."""
        from ignite.handlers import Checkpoint

        ctx = self.ctx
        meta = _Meta(ctx.model, ctx.config.model, ctx.config.model_args)
        self.to_save = {"meta": meta, "model": ctx.model, "optimizer": ctx.optimizer}
        self.to_save.update(ctx.checkpoint_objects)
        saver = _saver_class()(self.directory)
        self.last = Checkpoint(
            self.to_save,
            saver,
            filename_prefix="last",
            n_saved=self.keep_last,
            global_step_transform=lambda engine, _: engine.state.iteration,
            include_self=True,
        )
        self.best = Checkpoint(
            {"model": ctx.model},
            saver,
            filename_prefix="best",
            n_saved=1,
            score_function=lambda engine: engine.state.record["test_acc"],
            score_name="test_acc",
            global_step_transform=lambda engine, _: engine.state.epoch,
        )
        if ctx.config.resume:
            self._resume()

    def _save_best(self, engine: Engine) -> None:
        assert self.best is not None
        self.best(engine)

    def _save_last(self, engine: Engine) -> None:
        """Save unless this iteration is already saved (epoch end that is also an every-N step)."""
        assert self.last is not None
        from mnist_ignite.core.engines import finite_weights

        if not finite_weights(self.to_save["model"]):
            warnings.warn(
                f"not saving a checkpoint at iteration {engine.state.iteration}: the model holds NaN/Inf",
                stacklevel=1,
            )
            return
        latest = self.last.last_checkpoint
        if latest is None or Path(latest).name != f"last_checkpoint_{engine.state.iteration}.pt":
            self.last(engine)

    def _candidates(self) -> list[Path]:
        spec = self.ctx.config.resume
        return find_checkpoints(self.directory) if spec == "auto" else [Path(spec)]

    def _resume(self) -> None:
        """Restore the newest loadable checkpoint (``--resume auto`` falls back past damaged ones, saying so)."""
        ctx = self.ctx
        candidates = self._candidates()
        if not candidates:
            if ctx.is_main_process:
                print(f"--resume auto: no checkpoint in {self.directory}; starting from scratch", flush=True)
            return
        for i, path in enumerate(candidates):
            try:
                state = self._load(path)
                break
            except CheckpointLoadError as err:
                if i + 1 == len(candidates) or not _damaged(err):
                    raise
                print(f"mnist-ignite: warning: {err}; trying the previous checkpoint", file=sys.stderr, flush=True)
        # the run's identity first: a mismatch is reported before anything is overwritten
        to_load = {k: self.to_save[k] for k in ("meta", "settings", "plugins") if k in self.to_save}
        to_load |= {k: v for k, v in self.to_save.items() if k not in to_load}
        to_load["checkpointer"] = self.last
        from ignite.handlers import Checkpoint

        try:
            Checkpoint.load_objects(to_load, dict(state))
        except CheckpointLoadError:
            raise
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise CheckpointLoadError(f"cannot restore {path}: {type(err).__name__}: {err}") from None
        if ctx.is_main_process:
            t = ctx.trainer.state
            print(f"resumed from {path} (epoch {t.epoch}, iteration {t.iteration})", flush=True)

    def _load(self, path: Path) -> Mapping[str, Any]:
        state = load_tensors(path)
        if not isinstance(state, Mapping) or state.get("meta", {}).get("format") != FORMAT:
            raise CheckpointLoadError(f"{path} is not an mnist-ignite checkpoint (no '{FORMAT}' header)")
        epoch_length = state.get("trainer", {}).get("epoch_length")
        if epoch_length != self.ctx.epoch_length:
            raise CheckpointLoadError(
                f"{path} was made with {epoch_length} iterations per epoch, this run has {self.ctx.epoch_length}: "
                "keep --batch-size, --max-train-samples and --nproc-per-node as they were"
            )
        return state


def _damaged(err: CheckpointLoadError) -> bool:
    return "damaged" in str(err)
