"""Matplotlib plots in OUTPUT/plots, written atomically; the live one updates in place in a notebook.

* samples.png: the seed's 3x4 grid of augmented training images, at the start;
* metrics.png: loss and accuracy per epoch, train and test on the same axes, rewritten after every
  epoch (in a Jupyter notebook, one image output shows it and is updated in place);
* misclassified.png and confusion_matrix.png (Ignite ConfusionMatrix), at the end.

A plotting failure warns once and training goes on: plots are never worth a lost run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mnist_ignite.core.files import atomic_write
from mnist_ignite.plugins import Output, Plugin, RunContext
from mnist_ignite.plugins.background import Background

if TYPE_CHECKING:  # matplotlib, torch and Ignite load when a run starts, not for --help
    from ignite.engine import Engine
    from matplotlib.figure import Figure

__all__ = ["PlotsPlugin"]

DPI = 100


class PlotsPlugin(Plugin):
    """Writes the run's figures; drawing runs on a writer thread, off the training loop."""

    name = "plots"
    description = "matplotlib PNGs in OUTPUT/plots: metrics (live), samples, misclassified, confusion matrix"
    outputs = (
        Output(
            "plots/",
            "metrics (live), samples, misclassified, confusion matrix (PNG)",
            files=("samples.png", "metrics.png", "misclassified.png", "confusion_matrix.png"),
        ),
    )

    def attach(self, ctx: RunContext) -> None:
        # imported here, on the main thread: a module's first import on the writer thread can race
        # another thread's import of the same modules (matplotlib's) and fail
        import matplotlib.backends.backend_agg  # noqa: F401 - what savefig loads on first use
        from ignite.engine import Events
        from ignite.metrics import ConfusionMatrix

        from mnist_ignite.core.engines import MisclassifiedSamples
        from mnist_ignite.reporting.figures import in_notebook

        self.ctx = ctx
        self.dir = ctx.output_dir / "plots"
        self.display: Any = None  # the notebook output that shows metrics.png
        self.matrix = ConfusionMatrix(num_classes=10, device=ctx.device)
        self.matrix.attach(ctx.evaluator, "confusion_matrix")  # on every rank: its compute is a collective
        if not ctx.is_main_process:
            return
        # drawing takes ~0.1 s a figure: a writer thread keeps it off the training loop; in a
        # notebook, drawing stays on the kernel's thread, where display() reaches the cell
        self.notebook = in_notebook()
        self.worker = Background(self.name, inline=self.notebook)
        self.wrong = MisclassifiedSamples(limit=12)
        self.wrong.attach(ctx.evaluator)
        ctx.trainer.add_event_handler(Events.STARTED, self.samples)
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, self.metrics)
        ctx.trainer.add_event_handler(Events.COMPLETED, self.final)
        ctx.trainer.add_event_handler(Events.COMPLETED | Events.TERMINATE, self.flush)

    def _draw(self, draw: Callable[..., None], *args: Any) -> None:
        """Run ``draw`` on the writer thread; a failure warns once and training goes on."""
        self.worker.submit("drawing", draw, *args)

    def _save(self, fig: Figure, name: str) -> bytes:
        from mnist_ignite.reporting.figures import figure_png

        png = figure_png(fig, dpi=DPI)
        atomic_write(self.dir / name, lambda f: f.write(png))
        return png

    def flush(self, _: Engine | None = None) -> None:
        """Wait until every queued figure is on disk."""
        self.worker.drain()

    def close(self) -> None:
        """End of the run, failed or not (called by the core): the queued figures reach the disk."""
        if self.ctx.is_main_process:
            self.worker.close()

    def samples(self, _: Engine) -> None:
        from mnist_ignite.core.data import preview

        self._draw(self._save_grid, *preview(self.ctx.train_data), "samples.png", None)

    def _save_grid(self, images: Any, titles: list[str], name: str, figsize: Any) -> None:
        from mnist_ignite.reporting.figures import image_grid

        self._save(image_grid(images, titles, figsize=figsize), name)

    def metrics(self, _: Engine) -> None:
        self._draw(self._save_metrics, [dict(r) for r in self.ctx.history.rows])

    def _save_metrics(self, rows: list[dict[str, Any]]) -> None:
        from mnist_ignite.reporting.figures import metrics_figure

        png = self._save(metrics_figure(rows), "metrics.png")
        if self.notebook:  # one output, replaced each epoch, showing the very PNG on disk
            from IPython.display import Image, display

            if self.display is None:
                self.display = display(Image(data=png), display_id=True)
            else:
                self.display.update(Image(data=png))

    def final(self, _: Engine) -> None:
        if self.wrong.true:
            from mnist_ignite.core.data import denormalize

            images = denormalize(self.wrong.images)
            self._draw(self._save_grid, images, self.wrong.titles(), "misclassified.png", (10, 8))
        matrix = self.ctx.evaluator.state.metrics.get("confusion_matrix")
        if matrix is not None:
            from mnist_ignite.reporting.figures import confusion_matrix_figure

            self._draw(lambda m: self._save(confusion_matrix_figure(m), "confusion_matrix.png"), matrix.cpu())
