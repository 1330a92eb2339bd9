"""A tqdm progress bar (Ignite's ProgressBar) with the loss and running accuracy, like the seed's bar.

Only on a terminal or in a notebook: in logs and CI the core's one line per epoch is the progress report. The
bar reads the loss every refresh, a host sync the default path avoids, so it stays off there.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from ignite.handlers import ProgressBar
from ignite.metrics import RunningAverage

from mnist_ignite.figures import in_notebook
from mnist_ignite.plugins import Option, Plugin, RunContext

__all__ = ["ProgressPlugin"]


def _batch_accuracy(output: dict[str, torch.Tensor]) -> torch.Tensor:
    return (output["y_pred"].argmax(dim=1) == output["y"]).float().mean()


class ProgressPlugin(Plugin):
    """Shows ``loss`` and a running ``acc`` per iteration on the main process."""

    name = "progress"
    description = "tqdm bar with loss and running accuracy (terminal only; --no-progress to hide)"
    order = 30
    options = (Option("progress-always", bool, False, "show the bar even when output is not a terminal"),)

    def attach(self, ctx: RunContext) -> None:
        if not ctx.is_main_process or not (self.progress_always or sys.stderr.isatty() or in_notebook()):
            return
        trainer = ctx.trainer
        RunningAverage(output_transform=lambda o: o["loss"], device=ctx.device).attach(trainer, "loss")
        RunningAverage(output_transform=_batch_accuracy, device=ctx.device).attach(trainer, "acc")

        self.bar: Any = ProgressBar(persist=False, desc="train")
        self.bar.attach(trainer, metric_names=["loss", "acc"])
