"""Matplotlib plots in OUTPUT/plots, written atomically; updated inline in a Jupyter notebook.

* samples.png: the seed's 3x4 grid of augmented training images, at the start;
* metrics.png: the seed's 2x2 results figure, rewritten after every epoch;
* misclassified.png and confusion_matrix.png (Ignite ConfusionMatrix), at the end.

A plotting failure warns once and training goes on: plots are never worth a lost run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import matplotlib
from ignite.engine import Engine, Events
from ignite.metrics import ConfusionMatrix

from mnist_ignite.data import denormalize, preview
from mnist_ignite.engine import MisclassifiedSamples
from mnist_ignite.figures import (
    confusion_matrix_figure,
    image_grid,
    in_notebook,
    plot_model_results,
    save_figure,
)
from mnist_ignite.history import seed_results
from mnist_ignite.plugins import Plugin, RunContext

__all__ = ["PlotsPlugin"]


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
        self.notebook = in_notebook()
        if not self.notebook:
            matplotlib.use("Agg", force=False)
        # drawing takes ~0.1 s a figure: a writer thread keeps it off the training loop
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plots")
        self.wrong = MisclassifiedSamples(limit=12)
        self.wrong.attach(ctx.evaluator)
        ctx.trainer.add_event_handler(Events.STARTED, self.samples)
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, self.metrics)
        ctx.trainer.add_event_handler(Events.COMPLETED, self.final)
        ctx.trainer.add_event_handler(Events.COMPLETED | Events.TERMINATE, self.flush)

    def _draw(self, draw: Callable[..., None], *args: Any) -> None:
        """Run ``draw`` on the writer thread; a failure warns once and training goes on."""

        def safe() -> None:
            try:
                draw(*args)
            except Exception as err:  # plotting must never stop training
                if not self.failed:
                    warnings.warn(f"plots: {type(err).__name__}: {err}; training goes on", stacklevel=1)
                self.failed = True

        if self.notebook:
            safe()
        else:
            self.pool.submit(safe)

    def flush(self, _: Engine | None = None) -> None:
        """Wait until every queued figure is on disk."""
        self.pool.shutdown(wait=True)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plots")

    def close(self) -> None:
        """End of the run, failed or not (called by the core): the queued figures reach the disk."""
        if self.ctx.is_main_process:
            self.pool.shutdown(wait=True)

    def samples(self, _: Engine) -> None:
        self._draw(self._save_grid, *preview(self.ctx.train_data), "samples.png", None)

    def _save_grid(self, images: Any, titles: list[str], name: str, figsize: Any) -> None:
        save_figure(image_grid(images, titles, figsize=figsize), self.dir / name)

    def metrics(self, _: Engine) -> None:
        rows = [dict(r) for r in self.ctx.history.rows]
        self._draw(self._save_metrics, rows)

    def _save_metrics(self, rows: list[dict[str, Any]]) -> None:
        fig = plot_model_results(seed_results(rows))
        save_figure(fig, self.dir / "metrics.png")
        if self.notebook:
            from IPython.display import display

            if self.display is None:
                self.display = display(fig, display_id=True)
            else:
                self.display.update(fig)

    def final(self, _: Engine) -> None:
        if self.wrong.true:
            images = denormalize(self.wrong.images)
            self._draw(self._save_grid, images, self.wrong.titles(), "misclassified.png", (10, 8))
        matrix = self.ctx.evaluator.state.metrics.get("confusion_matrix")
        if matrix is not None:
            self._draw(
                lambda m: save_figure(confusion_matrix_figure(m), self.dir / "confusion_matrix.png"), matrix.cpu()
            )
