"""Metrics history: OUTPUT/metrics.json (a list, one object per epoch), metrics.csv, the seed's results.

Both files are rewritten atomically after every epoch from the run's checkpointed history, so a
resumed run lists every epoch exactly once.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from mnist_ignite.core.files import atomic_write, save_json
from mnist_ignite.core.history import RECORD_KEYS
from mnist_ignite.plugins import Output, Plugin, RunContext

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["COLUMNS", "HistoryPlugin"]

COLUMNS = RECORD_KEYS  # one definition, in the core


class HistoryPlugin(Plugin):
    """Writes metrics.json and metrics.csv on the main process after each epoch."""

    name = "history"
    description = "metrics.json + metrics.csv after every epoch, and the seed's results dict"
    outputs = (
        Output("metrics.json", "one row per epoch: lr, losses, accuracies, times"),
        Output("metrics.csv", "the same rows, for a spreadsheet"),
    )

    def attach(self, ctx: RunContext) -> None:
        from ignite.engine import Events

        self.ctx = ctx
        if ctx.is_main_process:
            ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.ctx.history.rows

    @property
    def results(self) -> dict[str, list[float]]:
        return self.ctx.history.results

    def write(self, _: Engine | None = None) -> None:
        out = self.ctx.output_dir
        save_json(out / "metrics.json", self.rows)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        data = buf.getvalue().encode()
        atomic_write(out / "metrics.csv", lambda f: f.write(data))
