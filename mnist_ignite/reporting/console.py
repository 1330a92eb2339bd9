"""What a run tells its user on the console: a header, one line per epoch, a footer.

:class:`ConsoleReport` is a plugin the command line (and ``mnist_ignite.train``) attaches last:
the header once the run is ready (after a resume), the epoch line once the epoch is complete
(``RunEvents.EPOCH_END``), and the target line when ``--target-acc`` is reached. Every line goes
to stdout above any progress bar (:func:`mnist_ignite.log.write_line`). :func:`footer` and
:func:`fast_dev_run_summary` turn a run's :class:`~mnist_ignite.core.launch.Outcome` into the
closing lines; the numbers come from ``results.json``, the files from the plugins' declarations.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_ignite.log import in_notebook, terminal_width, write_line
from mnist_ignite.plugins.api import RunContext

if TYPE_CHECKING:
    from ignite.engine import Engine

    from mnist_ignite.core.launch import Outcome

__all__ = [
    "ConsoleReport",
    "epoch_line",
    "fast_dev_run_summary",
    "footer",
    "header",
    "log_every",
    "progress_line",
    "size_text",
]


def _count(data: Any) -> int:
    """Images in a loader: the tensor pipeline's arrays or a DataLoader's dataset."""
    for attr in ("images", "dataset"):
        if hasattr(data, attr):
            return len(getattr(data, attr))
    return len(data)


def size_text(n: float) -> str:
    """A file size as people read it: ``812 bytes``, ``40.2 KB``, ``2.3 MB``, ``1.1 GB`` (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} bytes"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _args(args: dict[str, Any]) -> str:
    return "".join(f"{k}={v!r} " for k, v in args.items())


def header(ctx: RunContext, plugins: list[Any] | None = None) -> str:
    """The lines printed before the first step: model, device, precision, data, handlers, output folder."""
    from mnist_ignite.models.layers import model_stats, stats_line

    c = ctx.config
    shown = ctx.plugins if plugins is None else plugins
    lines = [
        f"mnist-ignite: {c.model} {_args(c.model_args)}on {ctx.device}, pipeline {c.pipeline}",
        f"  model: {type(ctx.model).__name__}, {stats_line(model_stats(ctx.model))}",
        f"  precision: {ctx.precision}",
        f"  data: {_count(ctx.train_data):,} training / {_count(ctx.eval_data):,} test images from {c.data_dir}; "
        f"batch {c.batch_size}, {_plural(ctx.epoch_length, 'iteration')} per epoch, {_plural(c.epochs, 'epoch')}",
        f"  handlers: {', '.join(p.name for p in shown) or 'none'}",
        f"  output: {ctx.output_dir}",
    ]
    return "\n".join(lines)


COMPACT_BELOW = 100  # columns: a narrower terminal gets the compact epoch line


def epoch_line(row: dict[str, Any], epochs: int, width: int | None = None) -> str:
    """One finished epoch: lr, train and test loss and accuracy, times and speed.

    Below ``COMPACT_BELOW`` columns the compact form (under 80 characters) keeps one line per epoch:
    ``epoch   1/2 lr 0.0100  train 2.3072 10.62%  test 2.3073 7.42%  4.1s, 1,574 img/s``.
    """
    if width is not None and width < COMPACT_BELOW:
        seconds = row["train_seconds"] + row["eval_seconds"]
        return (
            f"epoch {row['epoch']:>3}/{epochs} lr {row['lr']:.4f}  "
            f"train {row['train_loss']:.4f} {row['train_acc']:5.2f}%  "
            f"test {row['test_loss']:.4f} {row['test_acc']:5.2f}%  "
            f"{seconds:.1f}s, {row['train_images_per_second']:,.0f} img/s"
        )
    return (
        f"epoch {row['epoch']:>3}/{epochs}  lr {row['lr']:.5f}  "
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:6.2f}%  "
        f"test loss {row['test_loss']:.4f} acc {row['test_acc']:6.2f}%  "
        f"train {row['train_seconds']:.1f}s ({row['train_images_per_second']:,.0f} img/s)  "
        f"eval {row['eval_seconds']:.1f}s"
    )


LINES_PER_EPOCH = 10  # --log-every's default where stdout is not a terminal


def log_every(setting: int | None, epoch_length: int, interactive: bool) -> int:
    """Iterations between progress lines: the setting, or ``LINES_PER_EPOCH`` a epoch into a log (0: none)."""
    if setting is not None:
        return setting
    return 0 if interactive else max(1, -(-epoch_length // LINES_PER_EPOCH))


def progress_line(when: float, epoch: int, epochs: int, iteration: int, length: int, numbers: tuple) -> str:
    """``2026-12-02 14:20:01  epoch 1/20  iter 94/938  loss 0.4123  acc 87.20%  1,234 img/s``."""
    loss, acc, rate = numbers
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    width = len(str(length))
    return (
        f"{stamp}  epoch {epoch}/{epochs}  iter {iteration:>{width}}/{length}  "
        f"loss {loss:.4f}  acc {acc:.2f}%  {rate:,.0f} img/s"
    )


class ConsoleReport:
    """The run's console report, as a plugin: header at ``READY``, a line per epoch at ``EPOCH_END``,
    and with ``--log-every N`` (by default into a log) a timestamped line every N iterations."""

    name = "console"
    description = "the run's header, one line per epoch, the target line"

    def attach(self, ctx: RunContext) -> None:
        from mnist_ignite.plugins.events import RunEvents

        self.ctx = ctx
        if not ctx.is_main_process:
            return
        ctx.trainer.add_event_handler(RunEvents.READY, self._header)
        ctx.trainer.add_event_handler(RunEvents.EPOCH_END, self._epoch)
        interactive = terminal_width() is not None or in_notebook()
        every = log_every(getattr(ctx.config, "log_every", None), ctx.epoch_length, interactive)
        if every:
            from ignite.engine import Events

            self.sums: Any = None
            self.since = (time.perf_counter(), 0)
            ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED, self._add)
            ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED(every=every), self._line)

    def _add(self, engine: Engine) -> None:
        """Loss and hits since the last line, summed on the device (read once per line, not per step)."""
        import torch

        out = engine.state.output
        step = torch.stack([out["loss"].float() * out["y"].shape[0], out["correct"].sum().float()])
        self.sums = step if self.sums is None else self.sums + step
        self.since = (self.since[0], self.since[1] + int(out["y"].shape[0]))

    def _line(self, engine: Engine) -> None:
        if self.sums is None:
            return
        loss_sum, hits = self.sums.tolist()
        start, images = self.since
        now = time.perf_counter()
        state = engine.state
        length = state.epoch_length or 0
        iteration = (state.iteration - 1) % length + 1 if length else state.iteration
        numbers = (loss_sum / max(images, 1), 100.0 * hits / max(images, 1), images / max(now - start, 1e-9))
        write_line(progress_line(time.time(), state.epoch, self.ctx.config.epochs, iteration, length, numbers))
        self.sums, self.since = None, (now, 0)

    def _header(self, _: Engine) -> None:
        # the report itself is not a handler the user chose, nor are internal ones (a test harness's)
        write_line(header(self.ctx, [p for p in self.ctx.plugins if p is not self and not p.name.startswith("_")]))

    def _epoch(self, engine: Engine) -> None:
        write_line(epoch_line(engine.state.record, self.ctx.config.epochs, terminal_width()))
        target = self.ctx.target
        if target is not None and target.reached and target.reached["target_reached_epoch"] == engine.state.epoch:
            seconds = target.reached["target_reached_seconds"]
            write_line(
                f"target {target.target:g}% reached at epoch {engine.state.epoch} "
                f"({seconds:.1f} s of training and evaluation)"
            )


def footer(outcome: Outcome) -> str:
    """The lines printed after the last epoch: accuracy, times, where every file is."""
    results = outcome.results or {}
    lines = []
    if results.get("final_test_acc") is not None:
        lines.append(
            f"done: final test accuracy {results['final_test_acc']:.2f}% (epoch {results['epochs']}), "
            f"best {results['best_test_acc']:.2f}% (epoch {results['best_epoch']})"
        )
    if results.get("target_acc") is not None:
        if results["target_reached_epoch"] is not None:
            lines.append(
                f"  target {results['target_acc']:g}% reached at epoch {results['target_reached_epoch']} "
                f"in {results['target_reached_seconds']:.1f} s"
            )
        else:
            lines.append(f"  target {results['target_acc']:g}% not reached in {results['epochs']} epochs")
    if results:
        startup, lr_find = results.get("startup_seconds"), results.get("lr_find_seconds")
        line = f"  time: {results['total_seconds']:.1f} s in all"
        line += f", {startup:.1f} s start-up" if startup is not None else ""
        line += f", {lr_find:.1f} s lr finder" if lr_find is not None else ""
        spent = f"{results['train_seconds']:.1f} s training, {results['eval_seconds']:.1f} s evaluation"
        resumed, done = results.get("resumed_at_epoch"), results["epochs"]
        if resumed:  # this process's time, then the whole run's (its first epochs ran before the resume)
            these = f"epoch {done}" if done == resumed + 1 else f"epochs {resumed + 1}-{done}"
            line += f" for {these} (resumed after epoch {resumed})" if done > resumed else " (nothing left to train)"
            line += f"; {spent} over all {done} epochs"
        else:
            line += f", {spent}"
        lines.append(line)
        if results.get("skipped_steps"):
            lines.append(f"  fp16 loss scaling skipped {results['skipped_steps']} step(s) whose gradients overflowed")
    files = [o.path for o, _ in outcome.outputs]
    lines.append(f"  outputs in {outcome.output_dir}: {', '.join(files)}")
    for output, _ in outcome.outputs:  # the declared "open with" commands, ready to paste
        if output.open_with:
            where = shlex.quote(str(Path(outcome.output_dir) / output.path))
            lines.append(f"  open {output.path} with: {output.open_with.format(path=where)}")
    if any(o.path == "final_model.pt" for o, _ in outcome.outputs):
        from mnist_ignite.models.registry import is_trusted

        folder = shlex.quote(str(outcome.output_dir))
        trust = "" if is_trusted(outcome.config.model) else " --trust-code"  # the run names code to import
        lines.append(f"  next: mnist-ignite evaluate {folder}{trust}  (export, predict, compare take it too)")
    return "\n".join(lines)


def _never_fired(label: str, batches: int) -> str:
    """Why a handler on ``label`` may not have fired in a fast dev run of ``batches`` batches."""
    event = label.split(" ", 1)[-1]
    if "every=" in event:
        every = int(event.split("every=")[1].split(",")[0].rstrip(")"))
        unit = "iteration" if event.startswith("ITERATION") else "epoch"
        ran = batches if unit == "iteration" else 1
        hint = f"; try --fast-dev-run {every}" if unit == "iteration" else ""
        return f"{event} never fired in {_plural(ran, unit)}{hint}"
    if "once=" in event and event.startswith("EPOCH"):
        return f"{event} never fired in 1 epoch"
    return f"{event} never fired"


def fast_dev_run_summary(outcome: Outcome) -> str:
    """What a fast dev run proved: which plugins' handlers ran, and which never did (with the likely reason)."""
    n = outcome.fast_dev_run
    ran, idle = [], []
    for calls in outcome.handler_calls:
        if calls.plugin == ConsoleReport.name:
            continue
        if calls.fired:
            ran.append(calls.plugin)
        elif calls.calls:
            reasons = "; ".join(_never_fired(label, n) for label in calls.calls)
            idle.append(f"  {calls.plugin}: {reasons}")
        else:
            idle.append(f"  {calls.plugin}: {calls.idle_reason or 'registered no handler'}")
    batches = f"{_plural(n, 'training batch')} and {_plural(n, 'evaluation batch')}".replace("batchs", "batches")
    lines = [
        f"fast-dev-run passed: {batches} went through the model"
        + (f" and the handlers {', '.join(ran)}" if ran else "")
        + "; nothing was kept"
    ]
    if idle:
        lines.append("these handlers never ran:")
        lines += idle
    return "\n".join(lines)
