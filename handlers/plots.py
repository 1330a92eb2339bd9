"""Matplotlib plots in OUTPUT/plots, written atomically; updated inline in a Jupyter notebook.

* samples.png: the seed's 3x4 grid of augmented training images, at the start;
* metrics.png: the seed's 2x2 results figure, rewritten after every epoch;
* misclassified.png and confusion_matrix.png (Ignite ConfusionMatrix), at the end.

A plotting failure warns once and training goes on: plots are never worth a lost run.
"""

from __future__ import annotations

import warnings
from typing import Any

import matplotlib
from ignite.engine import Engine, Events
from ignite.metrics import ConfusionMatrix

from handlers.history import seed_results
from mnist_ignite.data import MNIST_MEAN, MNIST_STD
from mnist_ignite.engine import MisclassifiedSamples
from mnist_ignite.figures import confusion_matrix_figure, image_grid, plot_model_results, save_figure
from mnist_ignite.plugins import Plugin, RunContext

__all__ = ["PlotsPlugin"]


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class PlotsPlugin(Plugin):
    name = "plots"
    description = "matplotlib PNGs in OUTPUT/plots: metrics (live), samples, misclassified, confusion matrix"
    order = 60

    def attach(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.dir = ctx.output_dir / "plots"
        self.failed = False
        self.display: Any = None
        self.matrix = ConfusionMatrix(num_classes=10, device=ctx.device)
        self.matrix.attach(ctx.evaluator, "confusion_matrix")
        if not ctx.is_main_process:
            return
        if not _in_notebook():
            matplotlib.use("Agg", force=False)
        self.wrong = MisclassifiedSamples(limit=12)
        self.wrong.attach(ctx.evaluator)
        ctx.trainer.add_event_handler(Events.STARTED, self._safe, self.samples)
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, self._safe, self.metrics)
        ctx.trainer.add_event_handler(Events.COMPLETED, self._safe, self.final)

    def _safe(self, engine: Engine, draw: Any) -> None:
        try:
            draw(engine)
        except Exception as err:  # plotting must never stop training
            if not self.failed:
                warnings.warn(f"plots: {type(err).__name__}: {err}; training goes on", stacklevel=1)
            self.failed = True

    def samples(self, _: Engine) -> None:
        x, y = next(iter(self.ctx.train_data))
        images = x[:12].detach().float().cpu() * MNIST_STD + MNIST_MEAN
        save_figure(image_grid(images, [str(int(v)) for v in y[:12]]), self.dir / "samples.png")

    def metrics(self, _: Engine) -> None:
        fig = plot_model_results(seed_results(self.ctx.history.rows))  # type: ignore[attr-defined]
        save_figure(fig, self.dir / "metrics.png")
        if _in_notebook():
            from IPython.display import display

            if self.display is None:
                self.display = display(fig, display_id=True)
            else:
                self.display.update(fig)

    def final(self, _: Engine) -> None:
        if self.wrong.true:
            images = self.wrong.images * MNIST_STD + MNIST_MEAN
            save_figure(image_grid(images, self.wrong.titles(), figsize=(10, 8)), self.dir / "misclassified.png")
        matrix = self.ctx.evaluator.state.metrics.get("confusion_matrix")
        if matrix is not None:
            save_figure(confusion_matrix_figure(matrix), self.dir / "confusion_matrix.png")
