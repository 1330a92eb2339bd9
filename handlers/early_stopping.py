"""Stops training when test accuracy has not improved for ``patience`` epochs (Ignite EarlyStopping).

Its counter and best score ride in checkpoints, so a resumed run keeps counting.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from mnist_ignite.plugins import Option, Plugin, RunContext

__all__ = ["EarlyStoppingPlugin"]


class EarlyStoppingPlugin(Plugin):
    name = "early_stopping"
    description = "stop when test accuracy stalls for --patience epochs (Ignite EarlyStopping)"
    options = (
        Option("patience", int, 3, "epochs without improvement before stopping"),
        Option("min-delta", float, 0.0, "smallest accuracy gain (percentage points) that counts"),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.patience < 1 or self.min_delta < 0:
            raise ValueError("patience must be >= 1 and min-delta >= 0")
        self.handler: Any = None  # ignite.handlers.EarlyStopping, built in attach
        self._pending: Mapping[str, Any] | None = None

    def attach(self, ctx: RunContext) -> None:
        from ignite.engine import Events
        from ignite.handlers import EarlyStopping

        # Ignite 0.5.5 renamed min_delta to threshold
        delta = "threshold" if "threshold" in inspect.signature(EarlyStopping).parameters else "min_delta"
        self.handler = EarlyStopping(
            patience=self.patience,
            score_function=lambda engine: engine.state.record["test_acc"],
            trainer=ctx.trainer,
            **{delta: self.min_delta},
        )
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, self.handler)
        if self._pending is not None:
            self.handler.load_state_dict(self._pending)

    def state_dict(self) -> dict[str, Any]:
        assert self.handler is not None
        return dict(self.handler.state_dict())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.handler is None:
            self._pending = state
        else:
            self.handler.load_state_dict(state)
