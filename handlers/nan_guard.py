"""Stops the run when the training loss turns NaN or Inf (Ignite's TerminateOnNan as the detector).

It raises instead of only terminating, so nothing is saved after the divergence: the last
checkpoint on disk stays the last good one, and the command exits 1 with a hint.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mnist_ignite.errors import StopTraining
from mnist_ignite.plugins import Option, Plugin, RunContext

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["NanGuardPlugin"]


class NanGuardPlugin(Plugin):
    """Checks the loss every N iterations (each check is one host sync on GPU) and at epoch end."""

    name = "nan_guard"
    description = "stop with a clear message when the loss becomes NaN/Inf (Ignite TerminateOnNan)"
    options = (Option("nan-check-every", int, 50, "check the loss every N iterations"),)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.nan_check_every < 1:
            raise ValueError("nan-check-every must be >= 1")

    def attach(self, ctx: RunContext) -> None:
        from ignite.engine import Events
        from ignite.handlers import TerminateOnNan

        self.detector = TerminateOnNan(output_transform=lambda o: o["loss"])
        self.detector.logger.setLevel(logging.ERROR)
        self.ctx = ctx
        every = Events.ITERATION_COMPLETED(every=self.nan_check_every)
        ctx.trainer.add_event_handler(every | Events.EPOCH_COMPLETED, self.check)

    def check(self, engine: Engine) -> None:
        already = engine.should_terminate
        self.detector(engine)
        if engine.should_terminate and not already:
            engine.should_terminate = False
            raise StopTraining(
                f"the training loss became NaN/Inf at iteration {engine.state.iteration} (epoch {engine.state.epoch}); "
                f"lower --lr (now {self.ctx.config.lr}) or --momentum (now {self.ctx.config.momentum}). " + self._kept()
            )

    def _kept(self) -> str:
        """Where the last good state is, if any was saved before the stop."""
        folder = self.ctx.output_dir / "checkpoints"
        if folder.is_dir() and any(folder.glob("*.pt")):
            return f"The last good checkpoint is kept in {folder}."
        return "No checkpoint was saved before it."
