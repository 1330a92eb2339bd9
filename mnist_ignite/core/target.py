"""Time-to-accuracy (``--target-acc``): stop once test accuracy reaches the target, and record when.

Seconds count from this process's first training step to the end of the evaluation of the epoch
that reached the target. The stop happens at ``RunEvents.EPOCH_END``, after that epoch is
recorded and checkpointed; ``results.json`` gets ``target_reached_epoch`` and ``target_reached_seconds``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mnist_ignite.plugins.events import RunEvents

if TYPE_CHECKING:
    from ignite.engine import Engine

    from mnist_ignite.plugins.api import RunContext

__all__ = ["TimeToAccuracy"]


class TimeToAccuracy:
    """Watches each epoch's test accuracy; ``reached`` is ``{target_acc, target_reached_epoch,
    target_reached_seconds}`` once the target is met (None before)."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.start: float | None = None
        self.reached: dict[str, Any] | None = None

    def attach(self, ctx: RunContext) -> None:
        from ignite.engine import Events

        ctx.trainer.add_event_handler(Events.ITERATION_STARTED(once=1) | Events.STARTED, self._start)
        ctx.trainer.add_event_handler(RunEvents.EPOCH_END, self._check)

    def _start(self, _: Engine) -> None:
        if self.start is None:
            self.start = time.perf_counter()

    def _check(self, engine: Engine) -> None:
        record = engine.state.record
        if record["test_acc"] >= self.target and self.reached is None:
            self.reached = {
                "target_acc": self.target,
                "target_reached_epoch": record["epoch"],
                "target_reached_seconds": round(time.perf_counter() - (self.start or 0.0), 3),
            }
            engine.terminate()
