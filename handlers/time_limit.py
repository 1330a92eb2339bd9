"""Ends training cleanly after a wall-clock budget (Ignite TimeLimit); the checkpoint plugin saves on stop."""

from __future__ import annotations

from typing import Any

from ignite.engine import Events
from ignite.handlers import TimeLimit

from mnist_ignite.plugins import Option, Plugin, RunContext

__all__ = ["TimeLimitPlugin"]


class TimeLimitPlugin(Plugin):
    name = "time_limit"
    description = "stop after --time-limit seconds, checkpointed and resumable (Ignite TimeLimit)"
    order = 40
    options = (Option("time-limit", int, 3600, "seconds of training before stopping"),)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if not self.time_limit > 0:
            raise ValueError("time-limit must be > 0")

    def attach(self, ctx: RunContext) -> None:
        ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED, TimeLimit(limit_sec=self.time_limit))
