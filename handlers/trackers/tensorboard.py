"""TensorBoard event files through Ignite's ``TensorboardLogger``: ``tensorboard --logdir OUTPUT``.

What goes in (OUTPUT/tensorboard unless ``--tensorboard-dir``):

* ``train/batch_loss`` and ``lr/group_0`` every N iterations (Ignite's ``OutputHandler`` and
  ``OptimizerParamsHandler``; step = iteration);
* per epoch (step = the iteration it ends at), the row of metrics.json: ``loss/train``, ``loss/test``,
  ``accuracy/train``, ``accuracy/test`` (%), ``lr/epoch``, ``speed/...``, ``time/...``;
* the run's settings as hyperparameters (the HPARAMS tab, with the test accuracy and loss as its
  metrics) and as text, and a grid of augmented training images.

A resumed run writes into the same folder and purges the events past the checkpoint. A failure
(say, the disk fills up) warns once and training goes on without TensorBoard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_ignite.plugins import Option, Output, RunContext

from .base import EPOCH_SCALARS, TrackerPlugin, flat_settings

if TYPE_CHECKING:  # Ignite loads when a run starts, not for --help
    from ignite.engine import Engine

__all__ = ["TensorBoardPlugin"]


class TensorBoardPlugin(TrackerPlugin):
    """Writes the run to TensorBoard event files on the main process."""

    name = "tensorboard"
    description = "TensorBoard event files (Ignite TensorboardLogger): loss, lr, epoch metrics, hparams, images"
    package = extra = "tensorboard"
    outputs = (
        Output("tensorboard/", "TensorBoard event files", "tensorboard --logdir {path}", ("events.out.tfevents.*",)),
    )
    options = (
        Option("tensorboard-dir", str, None, "event files folder (default OUTPUT/tensorboard)"),
        Option("tensorboard-every", int, 10, "log the batch loss and lr every N iterations"),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.tensorboard_every < 1:
            raise ValueError("tensorboard-every must be >= 1")
        self.logger: Any = None
        self.finished = False

    def attach(self, ctx: RunContext) -> None:
        self.ctx = ctx
        if not ctx.is_main_process:
            return
        from ignite.engine import Events
        from ignite.handlers.tensorboard_logger import OptimizerParamsHandler, OutputHandler

        self.log_dir = Path(self.tensorboard_dir) if self.tensorboard_dir else ctx.output_dir / "tensorboard"
        t = ctx.trainer
        # the writer opens at STARTED, once a resumed run knows its iteration (events past it are purged)
        t.add_event_handler(Events.STARTED, self.guard("opening the event file", self.started))
        every = Events.ITERATION_COMPLETED(every=self.tensorboard_every)
        loss = OutputHandler(tag="train", output_transform=lambda out: {"batch_loss": out["loss"]})
        t.add_event_handler(every, self.guard("logging the batch loss", self._call), loss, every)
        lr = OptimizerParamsHandler(ctx.optimizer)
        t.add_event_handler(every, self.guard("logging the lr", self._call), lr, every)
        t.add_event_handler(Events.EPOCH_COMPLETED, self.guard("logging the epoch", self.epoch))
        t.add_event_handler(Events.COMPLETED | Events.TERMINATE, self._finished)

    def _call(self, engine: Engine, handler: Any, event: Any) -> None:
        if self.logger is not None:
            handler(engine, self.logger, event)

    def started(self, engine: Engine) -> None:
        from ignite.handlers.tensorboard_logger import TensorboardLogger
        from torch.utils.tensorboard.summary import hparams

        step = engine.state.iteration
        # resumed at iteration `step`: what an earlier process wrote after it is stale
        self.logger = TensorboardLogger(log_dir=str(self.log_dir), purge_step=step + 1 if step else None)
        writer = self.logger.writer
        settings = flat_settings(self.ctx.config)
        # the HPARAMS tab: this run's settings, its metrics read from the scalars of the same tags
        experiment, start, self._end = hparams(settings, {"accuracy/test": 0.0, "loss/test": 0.0})
        writer.file_writer.add_summary(experiment)
        writer.file_writer.add_summary(start)
        text = json.dumps(settings, indent=1).replace("\n", "\n    ")
        writer.add_text("config", "    " + text, step)
        from mnist_ignite.core.data import preview

        images, labels = preview(self.ctx.train_data)
        writer.add_images("samples", images, step)
        writer.add_text("samples/labels", " ".join(labels), step)

    def epoch(self, engine: Engine) -> None:
        row = engine.state.record
        # step = iteration, as for the batch loss: one x axis, and a resume purges stale epochs too
        for key, tag in EPOCH_SCALARS.items():
            self.logger.writer.add_scalar(tag, row[key], engine.state.iteration)
        self.logger.writer.flush()  # the epoch is on disk for a live ``tensorboard --logdir``

    def _finished(self, _: Engine) -> None:
        self.finished = True

    def close(self) -> None:
        """End of the run (called by the core): mark a finished session, flush and close the file."""
        if self.logger is None:
            return
        if self.finished and not self.failed:
            self.guard("writing the session end", self.logger.writer.file_writer.add_summary)(self._end)
        try:
            self.logger.close()
        except Exception as err:
            self.fail("closing the event file", err)
