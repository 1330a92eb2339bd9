"""Learning-rate schedules on Ignite's param schedulers, stepped per iteration.

``step`` is the seed's StepLR(step_size=15 epochs, gamma=0.1) expressed in iterations, so it
gives the seed's per-epoch values and still composes with a per-iteration warmup.
"""

from __future__ import annotations

from typing import Any

from mnist_ignite.errors import CheckpointLoadError
from mnist_ignite.plugins import Option, Plugin, RunContext

__all__ = ["SCHEDULES", "LRSchedulePlugin"]

SCHEDULES = ("step", "onecycle", "cosine", "plateau", "none")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return value


class LRSchedulePlugin(Plugin):
    """Attach the chosen schedule; its state rides in checkpoints as ``lr_scheduler``."""

    name = "lr_schedule"
    description = "LR schedule: step (seed StepLR 15/0.1) | onecycle | cosine | plateau | none, optional warmup"
    options = (
        Option("lr-schedule", str, "step", "schedule shape", SCHEDULES),
        Option("step-size", int, 15, "step: epochs between decays"),
        Option("gamma", float, 0.1, "step/plateau: decay factor"),
        Option("warmup-iters", _non_negative_int, 0, "linear warmup from 0 over N iterations (not with plateau)"),
        Option("min-lr", float, 0.0, "cosine: final learning rate"),
        Option("plateau-patience", int, 2, "plateau: epochs without test-accuracy gain before decaying"),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr-schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        if self.step_size < 1 or not 0 < self.gamma <= 1:
            raise ValueError("step-size must be >= 1 and 0 < gamma <= 1")
        if self.lr_schedule == "plateau" and self.warmup_iters:
            raise ValueError("warmup-iters does not combine with the plateau schedule")
        self.scheduler: Any = None

    def _settings(self) -> dict[str, Any]:
        return {o.dest: getattr(self, o.dest) for o in self.options}

    def state_dict(self) -> dict[str, Any]:
        """The schedule's own settings: a resume must continue the same schedule (its state rides as lr_scheduler)."""
        return {"settings": self._settings()}

    def resume_differences(self, state: dict[str, Any]) -> list[str]:
        """The schedule options that differ from the checkpoint's, as flags (``lr-schedule 'cosine' -> 'step'``):
        the checkpoint names them with the run's other differences, in one refusal."""
        saved, mine = state.get("settings", {}), self._settings()
        return [f"{k.replace('_', '-')} {saved.get(k)!r} -> {v!r}" for k, v in mine.items() if saved.get(k) != v]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        changed = self.resume_differences(state)
        if changed and not self.ctx.config.resume_force:
            raise CheckpointLoadError(
                "the checkpoint's learning-rate schedule differs (" + "; ".join(changed) + "): "
                "resume with the same schedule options, or --resume-force"
            )

    def attach(self, ctx: RunContext) -> None:
        from ignite.engine import Events
        from ignite.handlers import (
            CosineAnnealingScheduler,
            LRScheduler,
            ReduceLROnPlateauScheduler,
            create_lr_scheduler_with_warmup,
        )
        from torch.optim.lr_scheduler import OneCycleLR, StepLR

        from mnist_ignite.plugins.events import RunEvents

        self.ctx = ctx
        opt, trainer = ctx.optimizer, ctx.trainer
        lr = opt.param_groups[0]["lr"]
        total = max(1, ctx.epoch_length * ctx.config.epochs)
        if self.lr_schedule == "none":
            return
        if self.lr_schedule == "plateau":
            self.scheduler = ReduceLROnPlateauScheduler(
                opt,
                metric_name="accuracy",
                mode="max",
                factor=self.gamma,
                patience=self.plateau_patience,
                trainer=trainer,
            )
            ctx.evaluator.add_event_handler(Events.COMPLETED, self.scheduler)
        else:
            if self.lr_schedule == "step":
                scheduler: Any = StepLR(opt, step_size=self.step_size * ctx.epoch_length, gamma=self.gamma)
            elif self.lr_schedule == "onecycle":
                scheduler = OneCycleLR(opt, max_lr=lr, total_steps=total)
            else:  # one half-cosine over the whole run, from --lr down to --min-lr
                scheduler = CosineAnnealingScheduler(
                    opt, "lr", start_value=lr, end_value=self.min_lr, cycle_size=max(2, total)
                )
            if self.warmup_iters:
                # the torch scheduler itself, not LRScheduler(...): Ignite wraps it so that the
                # chainable StepLR does not keep the warmup's last value
                scheduler = create_lr_scheduler_with_warmup(
                    scheduler, warmup_start_value=0.0, warmup_end_value=lr, warmup_duration=self.warmup_iters
                )
            elif not isinstance(scheduler, CosineAnnealingScheduler):
                scheduler = LRScheduler(scheduler)
            self.scheduler = scheduler
            trainer.add_event_handler(Events.ITERATION_STARTED, scheduler)
        ctx.checkpoint_objects["lr_scheduler"] = self.scheduler
        trainer.add_event_handler(RunEvents.READY, self._step_aside_for_a_users_scheduler)

    def _step_aside_for_a_users_scheduler(self, _: Any) -> None:
        """Another plugin schedules this optimizer's learning rate: two schedules would stack, so this one goes.

        Runs at ``READY``, once every plugin is attached and before the checkpoint handler restores
        (this plugin attaches first), so a resumed run restores the user's scheduler alone.
        """
        from ignite.engine import Events

        ctx = self.ctx
        others = [
            getattr(owner, "name", type(owner).__name__)
            for engine in (ctx.trainer, ctx.evaluator)
            for owner, scheduler in getattr(engine, "schedulers", ())
            if owner is not self
            and getattr(scheduler, "optimizer", None) is ctx.optimizer
            and getattr(scheduler, "param_name", "lr") == "lr"
        ]
        if not others:
            return
        for engine, event in ((ctx.trainer, Events.ITERATION_STARTED), (ctx.evaluator, Events.COMPLETED)):
            if engine.has_event_handler(self.scheduler, event):
                engine.remove_event_handler(self.scheduler, event)
        ctx.checkpoint_objects.pop("lr_scheduler", None)
        ctx.log(
            f"lr_schedule: handler {', '.join(sorted(set(others)))} schedules the learning rate; "
            f"the built-in --lr-schedule {self.lr_schedule} steps aside"
        )
