"""A tqdm bar per epoch: running loss, accuracy in %, images/s and ETA; then the epoch's one line.

Like the seed's tqdm bar: the bar runs through the epoch, shows the epoch's train loss and
accuracy while the evaluation runs, and on a terminal gives its place to the epoch line (the
console report's, at ``RunEvents.EPOCH_END``): one line per finished epoch. In a notebook (the
seed's bar, then its test line) and into a pipe (``--progress-always``) the bar's final line stays.

While the bar is live, ``print()`` from any handler writes above it (:func:`mnist_ignite.log.lines_above_bar`),
never into it; ``ctx.log(...)`` is the documented way to write a line.

Only on a terminal (stderr) or in a notebook (stdout: stderr shows there as a warning box);
in logs and CI the core's one line per epoch is the report (``--progress-always`` forces the bar).
The numbers come from the trainer's own epoch metrics (``train_loss``, ``train_acc``) and are read
only when the bar redraws, so the bar costs one host sync per redraw, not one per batch.

Why not Ignite's ``ProgressBar``: it reads its metrics every iteration, closes only after the
epoch's other handlers (the evaluation), and its ``tqdm.autonotebook`` warns in notebooks.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from tqdm.std import tqdm

from mnist_ignite.log import in_notebook, lines_above_bar
from mnist_ignite.plugins import Option, Plugin, RunContext

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["ProgressPlugin"]

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"


class ProgressPlugin(Plugin):
    """Shows ``loss``, ``acc`` (%), ``img/s`` and the ETA per epoch on the main process."""

    name = "progress"
    description = "tqdm bar per epoch: loss, accuracy %, images/s, ETA (terminal or notebook; --no-progress to hide)"
    options = (Option("progress-always", bool, False, "show the bar even when output is not a terminal"),)

    def attach(self, ctx: RunContext) -> None:
        from ignite.engine import Events

        from mnist_ignite.plugins.events import RunEvents

        self.bar: tqdm | None = None
        self.completed = False
        self.redirect: Any = None
        self.notebook = in_notebook()
        if not ctx.is_main_process or not (self.progress_always or sys.stderr.isatty() or self.notebook):
            self.idle_reason = "off: output is not a terminal (--progress-always shows the bar anyway)"
            return
        self.ctx = ctx
        self.images, self.start = 0, 0.0
        self.sums: Any = None  # running loss and hits since the bar opened, on the device (no sync per step)
        ctx.trainer.add_event_handler(Events.EPOCH_STARTED, self._open)
        ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED, self._advance)
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_numbers)
        # the epoch's line takes the bar's place; an epoch cut short (time limit, signal) ends it too
        ctx.trainer.add_event_handler(RunEvents.EPOCH_END, self._finish)
        ctx.trainer.add_event_handler(Events.TERMINATE | Events.COMPLETED, self._finish)

    def _open(self, engine: Engine) -> None:
        self._finish(engine)
        state = engine.state
        epochs = max(int(getattr(self.ctx.config, "epochs", 0) or 0), state.max_epochs or 0)
        length = state.epoch_length
        self.images, self.start, self.sums, self.completed = 0, time.perf_counter(), None, False
        stream = sys.stdout if self.notebook else sys.stderr
        # a terminal: the epoch line takes the bar's place; a notebook (the seed's own bar and test line)
        # and a pipe keep the bar's final line
        self.leave = not stream.isatty()
        self.bar = tqdm(
            total=length,
            initial=state.iteration % length if length else 0,  # a resumed epoch starts where it stopped
            desc=f"epoch {state.epoch:>{len(str(epochs))}}/{epochs}",
            bar_format=BAR_FORMAT,
            file=stream,
            mininterval=0.5 if self.notebook else 0.1,  # a notebook keeps every redraw in the cell's output
            miniters=1,  # redraw on time alone, so the numbers are read exactly when a redraw follows
            dynamic_ncols=not self.notebook,
            leave=self.leave,
        )
        self.redirect = lines_above_bar()
        self.redirect.__enter__()

    def _postfix(self, engine: Engine | None = None) -> str:
        """The numbers after the bar: the epoch's own metrics once it is complete, else the running ones."""
        metrics = engine.state.metrics if engine is not None else {}
        if "train_loss" in metrics:  # EPOCH_COMPLETED: Ignite's metrics over the whole epoch
            loss, acc = float(metrics["train_loss"]), 100.0 * float(metrics["train_acc"])
        elif self.sums is not None:  # one host sync, only when the bar redraws
            loss_sum, hits, batches = self.sums.tolist()
            loss, acc = loss_sum / max(batches, 1), 100.0 * hits / max(self.images, 1)
        else:
            loss, acc = float("nan"), float("nan")
        rate = self.images / max(time.perf_counter() - self.start, 1e-9)
        return f"loss {loss:.4f}, acc {acc:.2f}%, {rate:,.0f} img/s"

    def _advance(self, engine: Engine) -> None:
        bar = self.bar
        if bar is None:
            return
        import torch  # loaded by the run already: --help never imports it here

        out = engine.state.output
        self.images += int(out["y"].shape[0])  # shape only: no device sync
        step = torch.stack([out["loss"].float(), out["correct"].sum().float(), torch.ones_like(out["loss"])])
        self.sums = step if self.sums is None else self.sums + step
        if time.time() - bar.last_print_t >= bar.mininterval:  # tqdm redraws in this update()
            bar.set_postfix_str(self._postfix(), refresh=False)
        bar.update(1)

    def _epoch_numbers(self, engine: Engine) -> None:
        """The epoch's own loss and accuracy on the bar while the evaluation runs."""
        self.completed = True
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(engine), refresh=True)

    def _finish(self, engine: Engine | None = None) -> None:
        """End the bar: its line is cleared for the epoch line (kept, with the epoch's numbers, in a pipe)."""
        bar, self.bar = self.bar, None
        redirect, self.redirect = self.redirect, None
        if redirect is not None:
            redirect.__exit__(None, None, None)
        if bar is not None:
            if self.leave:  # an epoch cut short shows its running numbers, not the last epoch's metrics
                bar.set_postfix_str(self._postfix(engine if self.completed else None), refresh=False)
            bar.close()

    def close(self) -> None:
        """End of the run, failed or not: a bar cut short still ends its line before any error message."""
        if getattr(self, "bar", None) is not None or getattr(self, "redirect", None) is not None:
            self._finish()
