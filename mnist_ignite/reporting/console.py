"""What a run tells its user: the header before training and the footer after it."""

from __future__ import annotations

from typing import Any

from mnist_ignite.plugins.api import RunContext

__all__ = ["footer", "header"]


def _count(data: Any) -> int:
    """Images in a loader: the tensor pipeline's arrays or a DataLoader's dataset."""
    for attr in ("images", "dataset"):
        if hasattr(data, attr):
            return len(getattr(data, attr))
    return len(data)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def header(ctx: RunContext) -> str:
    """The lines printed before the first step."""
    c = ctx.config
    from mnist_ignite.core.device import choose_precision
    from mnist_ignite.models.layers import model_stats, stats_line

    precision = choose_precision(c.precision, ctx.device)
    lines = [
        f"mnist-ignite: {c.model} {_args(c.model_args)}on {ctx.device}, pipeline {c.pipeline}",
        f"  model: {type(ctx.model).__name__}, {stats_line(model_stats(ctx.model))}",
        f"  precision: {precision}",
        f"  data: {_count(ctx.train_data):,} training / {_count(ctx.eval_data):,} test images from {c.data_dir}; "
        f"batch {c.batch_size}, {_plural(ctx.epoch_length, 'iteration')} per epoch, {_plural(c.epochs, 'epoch')}",
        f"  handlers: {', '.join(p.name for p in ctx.plugins) or 'none'}",
        f"  output: {ctx.output_dir}",
    ]
    return "\n".join(lines)


def _args(args: dict[str, Any]) -> str:
    return "".join(f"{k}={v!r} " for k, v in args.items())


def footer(ctx: RunContext, results: dict[str, Any]) -> str:
    """The lines printed after the last epoch."""
    out = ctx.output_dir
    lines = []
    if results["final_test_acc"] is not None:
        lines.append(
            f"done: final test accuracy {results['final_test_acc']:.2f}% (epoch {results['epochs']}), "
            f"best {results['best_test_acc']:.2f}% (epoch {results['best_epoch']})"
        )
    if results["target_acc"] is not None:
        if results["target_reached_epoch"] is not None:
            lines.append(
                f"  target {results['target_acc']:g}% reached at epoch {results['target_reached_epoch']} "
                f"in {results['target_reached_seconds']:.1f} s"
            )
        else:
            lines.append(f"  target {results['target_acc']:g}% not reached in {results['epochs']} epochs")
    startup = results["startup_seconds"]
    line = f"  time: {results['total_seconds']:.1f} s in all"
    line += f", {startup:.1f} s start-up" if startup is not None else ""
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
    names = ("final_model.pt", "metrics.json", "results.json", "plots", "checkpoints", "visdom.log")
    files = [name for name in names if (out / name).exists()]
    lines.append(f"  outputs in {out}: {', '.join(files)}")
    return "\n".join(lines)
