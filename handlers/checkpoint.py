"""Checkpoints with Ignite's ``Checkpoint`` and resume, in the format of :mod:`mnist_ignite.core.checkpoint`.

Saved at every epoch's end (and every ``--checkpoint-every-iters`` iterations, and when a run is
stopped by a signal or a time limit) to OUTPUT/checkpoints/last_checkpoint_<iteration>.pt, keeping
the last 2: model, optimizer, trainer state, lr scheduler, epoch metrics, history and every
plugin's ``state_dict()``. The best model by test accuracy goes to
best_model_<epoch>_test_acc=<acc>.pt, saved before the epoch's last checkpoint so that checkpoint
knows it. ``--resume auto`` restores the newest loadable checkpoint, falling back past damaged ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_ignite.errors import CheckpointLoadError, RunDirError
from mnist_ignite.plugins import Option, Output, Plugin, RunContext

if TYPE_CHECKING:  # Ignite and torch load when a run starts, not for --help
    from ignite.engine import Engine

__all__ = ["CheckpointPlugin"]


class CheckpointPlugin(Plugin):
    """Save and restore the whole run: every checkpoint object the core and the plugins registered."""

    name = "checkpoint"
    description = "checkpoints (last 2 + best by test accuracy), --resume auto|PATH, weights-only loading"
    options = (
        Option("checkpoint-every-iters", int, 0, "also save every N iterations mid-epoch (0 = epoch ends only)"),
        Option("keep-last", int, 2, "how many recent checkpoints to keep"),
    )
    outputs = (
        Output(
            "checkpoints/",
            "the last checkpoints (resumable) and the best model",
            files=("last_checkpoint_*.pt", "best_*.pt"),
        ),
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

        from mnist_ignite.core.checkpoint import checkpoint_dir
        from mnist_ignite.plugins.events import RunEvents, inside_epoch

        self.ctx = ctx
        self.directory = checkpoint_dir(ctx.output_dir)
        if ctx.is_main_process:
            self.directory.mkdir(parents=True, exist_ok=True)
        trainer = ctx.trainer
        trainer.add_event_handler(RunEvents.READY, self._setup)
        # RunEvents.EPOCH_END: after every plugin's EPOCH_COMPLETED handler (early stopping's counter,
        # the history row...), so the saved epoch is complete; the best model first, so the epoch's
        # last checkpoint holds the best model's record as of this epoch
        trainer.add_event_handler(RunEvents.EPOCH_END, self._save_best)
        trainer.add_event_handler(RunEvents.EPOCH_END, self._save_last)
        trainer.add_event_handler(Events.TERMINATE, self._save_last)
        if self.checkpoint_every_iters:
            trainer.add_event_handler(inside_epoch(self.checkpoint_every_iters), self._save_last)

    def _setup(self, engine: Engine) -> None:
        """At READY every plugin has attached: save everything registered in ``ctx.checkpoint_objects``."""
        from ignite.handlers import Checkpoint

        from mnist_ignite.core.checkpoint import BEST_PREFIX, LAST_PREFIX, Meta, saver

        ctx = self.ctx
        meta = Meta(ctx.model, ctx.config.model, ctx.config.model_args)
        self.to_save = {"meta": meta, "model": ctx.model, "optimizer": ctx.optimizer}
        self.to_save.update(ctx.checkpoint_objects)
        disk = saver(self.directory)
        self.last = Checkpoint(
            self.to_save,
            disk,
            filename_prefix=LAST_PREFIX,
            n_saved=self.keep_last,
            global_step_transform=lambda engine, _: engine.state.iteration,
            include_self=True,
        )
        self.best = Checkpoint(
            {"model": ctx.model},
            disk,
            filename_prefix=BEST_PREFIX,
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
        from mnist_ignite.core.checkpoint import last_name
        from mnist_ignite.core.engines import finite_weights
        from mnist_ignite.log import warn

        if not finite_weights(self.to_save["model"]):
            warn(f"not saving a checkpoint at iteration {engine.state.iteration}: the model holds NaN/Inf")
            return
        latest = self.last.last_checkpoint
        if latest is None or Path(latest).name != last_name(engine.state.iteration):
            self.last(engine)

    def _candidates(self) -> list[Path]:
        from mnist_ignite.core.checkpoint import find_checkpoints

        spec = self.ctx.config.resume
        return find_checkpoints(self.directory) if spec == "auto" else [Path(str(spec))]

    def _resume(self) -> None:
        """Restore the newest loadable checkpoint (``--resume auto`` falls back past damaged ones, saying so)."""
        from ignite.handlers import Checkpoint

        from mnist_ignite.core.checkpoint import KEYS, check_epoch_length, read_checkpoint
        from mnist_ignite.core.rundir import FINAL_MODEL, RESULTS
        from mnist_ignite.log import note, warn

        ctx = self.ctx
        candidates = self._candidates()
        if not candidates:
            finished = [name for name in (FINAL_MODEL, RESULTS) if (ctx.output_dir / name).exists()]
            if not self.directory.is_dir() and (ctx.output_dir / "metrics.json").exists():
                finished.append("metrics.json")  # its checkpoints/ was removed
            if finished:
                raise RunDirError(
                    f"--resume auto: {ctx.output_dir} holds a run ({', '.join(finished)}) but no checkpoint in "
                    f"{self.directory} to continue it from; --overwrite replaces that run"
                )
            if ctx.is_main_process:
                note(f"--resume auto: no checkpoint in {self.directory}; starting from scratch")
            return
        for i, path in enumerate(candidates):
            try:
                state = read_checkpoint(path)
                break
            except CheckpointLoadError as err:
                if i + 1 == len(candidates) or "damaged" not in str(err):
                    raise
                warn(f"{err}; trying the previous checkpoint")
        settings, plugins = self.to_save.get("settings"), self.to_save.get("plugins")
        more = plugins.differences(state.get("plugins")) if plugins is not None else []
        if settings is not None and isinstance(state.get("settings"), dict):
            # every differing setting, the plugins' options too, in one refusal, before anything is restored
            settings.load_state_dict(state["settings"], more)
        check_epoch_length(path, state, ctx.epoch_length)
        to_load = {k: self.to_save[k] for k in KEYS if k in self.to_save and k != "settings"}
        to_load |= {k: v for k, v in self.to_save.items() if k not in to_load and k != "settings"}
        to_load["checkpointer"] = self.last
        forced = ctx.config.resume_force and more  # a plugin's options changed: its objects may not fit any more
        for key, obj in to_load.items() if forced else [(None, to_load)]:
            try:
                Checkpoint.load_objects({key: obj} if key else obj, dict(state))
            except CheckpointLoadError:
                raise
            except (RuntimeError, KeyError, ValueError, TypeError) as err:
                if key is None or (key in KEYS and key != "lr_scheduler"):  # the model, optimizer, trainer: the run
                    raise CheckpointLoadError(f"cannot restore {path}: {type(err).__name__}: {err}") from None
                warn(f"--resume-force: the checkpoint's {key} does not fit its changed options: it starts afresh")
        if ctx.is_main_process:
            t = ctx.trainer.state
            done, into = divmod(t.iteration, t.epoch_length or ctx.epoch_length)
            where = f"in epoch {done + 1}, iteration {into} of {ctx.epoch_length}" if into else f"after epoch {done}"
            note(f"resumed from {path} ({where}; {t.iteration} iteration{'' if t.iteration == 1 else 's'} in all)")
