"""Checkpoints with Ignite's ``Checkpoint`` + ``DiskSaver``, and resume.

Saved every epoch (and every ``--checkpoint-every-iters`` iterations, and when a run is stopped
by a signal or a time limit) to OUTPUT/checkpoints/last_checkpoint_<iteration>.pt, keeping the
last 2: model, optimizer, trainer state, lr scheduler, epoch metrics, history and every plugin's
``state_dict()``. The best model by test accuracy goes to best_model_<epoch>_test_acc=<acc>.pt.
Files are written atomically with fsync and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from mnist_ignite.files import CheckpointLoadError, atomic_write, load_tensors
from mnist_ignite.plugins import Option, Plugin, RunContext

__all__ = ["CheckpointPlugin", "FsyncDiskSaver", "PluginStates", "find_latest"]

FORMAT = "mnist-ignite/1"
_LAST = re.compile(r"^last_checkpoint_(\d+)\.pt$")


class FsyncDiskSaver(DiskSaver):
    """Ignite's DiskSaver, writing through a temp file that is fsynced before the rename."""

    def _save_func(self, checkpoint: Mapping, path: Path, func: Callable[..., Any]) -> None:
        atomic_write(path, lambda f: func(checkpoint, f, **self.kwargs))

    def remove(self, filename: str) -> None:
        # a run resumed from another folder inherits a list naming files that are not here
        if idist.get_rank() == self.save_on_rank:
            (self.dirname / filename).unlink(missing_ok=True)


class PluginStates:
    """The ``state_dict()`` of every plugin that has one, keyed by plugin name."""

    def __init__(self, plugins: list[Any]) -> None:
        self.plugins = plugins

    def _stateful(self) -> dict[str, Any]:
        return {p.name: p for p in self.plugins if callable(getattr(p, "state_dict", None))}

    def state_dict(self) -> dict[str, Any]:
        return {name: p.state_dict() for name, p in self._stateful().items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, plugin in self._stateful().items():
            if name in state:
                plugin.load_state_dict(state[name])


class _Meta:
    """Identifies the file as this tool's checkpoint of this model."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def _describe(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": type(self.model).__name__,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }

    def state_dict(self) -> dict[str, Any]:
        return self._describe()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mine = self._describe()
        if dict(state) != mine:
            raise CheckpointLoadError(f"checkpoint is of another model or format: {dict(state)}, this run has {mine}")


def find_latest(directory: Path) -> Path | None:
    """The ``last_checkpoint_*.pt`` with the highest iteration in ``directory``."""
    found = [(int(m.group(1)), p) for p in directory.glob("last_checkpoint_*.pt") if (m := _LAST.match(p.name))]
    return max(found)[1] if found else None


class CheckpointPlugin(Plugin):
    """Save and restore the whole run; attaches last so it sees every other plugin's state."""

    name = "checkpoint"
    description = "checkpoints (last 2 + best by test accuracy), --resume auto|PATH, weights-only loading"
    order = 90
    options = (
        Option("checkpoint-every-iters", int, 0, "also save every N iterations mid-epoch (0 = epoch ends only)"),
        Option("keep-last", int, 2, "how many recent checkpoints to keep"),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.checkpoint_every_iters < 0 or self.keep_last < 1:
            raise ValueError("checkpoint-every-iters must be >= 0 and keep-last >= 1")
        self.last: Checkpoint | None = None
        self.best: Checkpoint | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best.state_dict() if self.best else {"saved": []}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.best is not None:
            self.best.load_state_dict(state["best"])

    def attach(self, ctx: RunContext) -> None:
        directory = ctx.output_dir / "checkpoints"
        if ctx.is_main_process:
            directory.mkdir(parents=True, exist_ok=True)
        self.to_save = {
            "meta": _Meta(ctx.model),
            "model": ctx.model,
            "optimizer": ctx.optimizer,
            **ctx.checkpoint_objects,
            "plugins": PluginStates([*ctx.plugins, self]),
        }
        saver = FsyncDiskSaver(directory, atomic=True, create_dir=True, require_empty=False)
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
        trainer = ctx.trainer
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._save_last)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self.best)
        trainer.add_event_handler(Events.TERMINATE, self._save_last)
        every = self.checkpoint_every_iters
        if every:  # epoch ends are saved at EPOCH_COMPLETED, after the evaluation and the history row
            mid_epoch = Events.ITERATION_COMPLETED(
                event_filter=lambda e, i: i % every == 0 and i % e.state.epoch_length != 0
            )
            trainer.add_event_handler(mid_epoch, self._save_last)
        if ctx.config.resume:
            self._resume(ctx, directory)

    def _save_last(self, engine: Engine) -> None:
        """Save unless this iteration is already saved (epoch end that is also an every-N step)."""
        assert self.last is not None
        if not self._finite():
            warnings.warn(
                f"not saving a checkpoint at iteration {engine.state.iteration}: the model holds NaN/Inf",
                stacklevel=1,
            )
            return
        name = f"last_checkpoint_{engine.state.iteration}.pt"
        if not any(item.filename == name for item in self.last._saved):
            self.last(engine)

    def _finite(self) -> bool:
        """All weights finite (one host sync per save): a diverged model is never a checkpoint."""
        params = [p.detach() for p in self.to_save["model"].parameters()]
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())

    def _resume(self, ctx: RunContext, directory: Path) -> None:
        spec = ctx.config.resume
        path = find_latest(directory) if spec == "auto" else Path(spec)
        if path is None:
            if ctx.is_main_process:
                print(f"--resume auto: no checkpoint in {directory}; starting from scratch", flush=True)
            return
        state = load_tensors(path)
        if not isinstance(state, Mapping) or state.get("meta", {}).get("format") != FORMAT:
            raise CheckpointLoadError(f"{path} is not an mnist-ignite checkpoint (no '{FORMAT}' header)")
        epoch_length = state.get("trainer", {}).get("epoch_length")
        if epoch_length != ctx.epoch_length:
            raise CheckpointLoadError(
                f"{path} was made with {epoch_length} iterations per epoch, this run has {ctx.epoch_length}: "
                "keep --batch-size, --max-train-samples and --nproc-per-node as they were"
            )
        to_load = dict(self.to_save)
        to_load["checkpointer"] = self.last
        try:
            Checkpoint.load_objects(to_load, dict(state))
        except CheckpointLoadError:
            raise
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise CheckpointLoadError(f"cannot restore {path}: {type(err).__name__}: {err}") from None
        if ctx.is_main_process:
            t = ctx.trainer.state
            print(f"resumed from {path} (epoch {t.epoch}, iteration {t.iteration})", flush=True)
            restored = ctx.optimizer.param_groups[0]["lr"]
            if t.iteration and abs(restored - ctx.config.lr) > 1e-12 * max(1.0, ctx.config.lr):
                print(
                    f"note: the optimizer and lr schedule continue from the checkpoint (lr {restored:g}); "
                    f"--lr {ctx.config.lr:g} applies to fresh runs only",
                    flush=True,
                )
