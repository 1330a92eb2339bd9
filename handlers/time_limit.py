"""Ends training cleanly after a wall-clock budget (Ignite TimeLimit); the checkpoint plugin saves on stop."""

from __future__ import annotations

from typing import Any

from mnist_ignite.plugins import Option, Plugin, RunContext

__all__ = ["TimeLimitPlugin"]


class TimeLimitPlugin(Plugin):
    name = "time_limit"
    description = "stop after --time-limit seconds, checkpointed and resumable (Ignite TimeLimit)"
    options = (Option("time-limit", int, 3600, "seconds of training before stopping"),)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if not self.time_limit > 0:
            raise ValueError("time-limit must be > 0")

    def attach(self, ctx: RunContext) -> None:
        from ignite.engine import Events
        from ignite.handlers import TimeLimit

        from mnist_ignite.plugins.events import inside_epoch

        # checked after each iteration inside an epoch and after an epoch's own handlers, never between
        # an epoch's last iteration and its EPOCH_COMPLETED (that stop would lose the epoch's evaluation)
        ctx.trainer.add_event_handler(inside_epoch() | Events.EPOCH_COMPLETED, TimeLimit(limit_sec=self.time_limit))
