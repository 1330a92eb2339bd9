"""A run's outcome, ``results.json``, and its clock: start-up, lr finder, training and evaluation seconds.

``results.json`` holds what came of a run (best and final test accuracy, epochs, times) for
tools (``compare``, repeats, sweeps) and for the footer the command line prints. Start-up counts
from the process start (the interpreter's own start-up included, read from /proc) to the first
training step, without the lr finder's time, which is a figure of its own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mnist_ignite.core.files import save_json
from mnist_ignite.plugins.api import RunContext

__all__ = ["StartupClock", "process_seconds", "run_clock_base", "summarize", "write_results"]

_IMPORTED = time.time()


def process_seconds() -> float:
    """Seconds since this process started (from /proc on Linux; else since mnist_ignite was imported)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time() - _IMPORTED


_runs_started = 0


def run_clock_base() -> float:
    """Where a run's clock starts: the process start for the first run in a process (imports count as
    start-up), the call itself for later ones (``--repeat`` runs its seeds in one process)."""
    global _runs_started
    _runs_started += 1
    return 0.0 if _runs_started == 1 else process_seconds()


class StartupClock:
    """Seconds from the run's start (see :func:`run_clock_base`) to its first training step, less ``excluded``
    (the lr finder's seconds, a figure of their own)."""

    def __init__(self, base: float = 0.0, excluded: float = 0.0) -> None:
        self.base, self.excluded = base, excluded
        self.seconds: float | None = None

    def elapsed(self) -> float:
        return process_seconds() - self.base

    def attach(self, trainer: Any) -> None:
        from ignite.engine import Events

        def first_step(_: Any) -> None:
            self.seconds = self.elapsed() - self.excluded
            trainer.remove_event_handler(first_step, Events.ITERATION_STARTED)

        trainer.add_event_handler(Events.ITERATION_STARTED, first_step)


def summarize(
    ctx: RunContext, clock: StartupClock, resumed_at: int = 0, lr_find_seconds: float | None = None
) -> dict[str, Any]:
    """The run's outcome, written to OUTPUT/results.json.

    Accuracy, epochs, training and evaluation seconds are the whole run's; a run resumed after
    epoch ``resumed_at`` spent ``total_seconds`` and ``startup_seconds`` in this process only.
    """
    startup_seconds, total_seconds = clock.seconds, clock.elapsed()
    reached = ctx.target.reached if ctx.target is not None else None
    rows = ctx.history.rows
    scaler = getattr(ctx.trainer, "grad_scaler", None)
    best = max(rows, key=lambda r: r["test_acc"]) if rows else None
    final = rows[-1] if rows else None
    return {
        "epochs": final["epoch"] if final else 0,
        "final_test_acc": final["test_acc"] if final else None,
        "best_test_acc": best["test_acc"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "train_seconds": round(sum(r["train_seconds"] for r in rows), 3),
        "eval_seconds": round(sum(r["eval_seconds"] for r in rows), 3),
        "startup_seconds": None if startup_seconds is None else round(startup_seconds, 3),
        "lr_find_seconds": None if lr_find_seconds is None else round(lr_find_seconds, 3),
        "total_seconds": round(total_seconds, 3),
        "resumed_at_epoch": resumed_at or None,  # this process trained the epochs after it
        # fp16 loss scaling: updates skipped because a gradient overflowed (None without fp16)
        "skipped_steps": None if scaler is None else scaler.skipped_steps,
        "target_acc": ctx.config.target_acc,
        "target_reached_epoch": (reached or {}).get("target_reached_epoch"),
        "target_reached_seconds": (reached or {}).get("target_reached_seconds"),
    }


def write_results(ctx: RunContext, results: dict[str, Any]) -> None:
    from mnist_ignite.core.rundir import RESULTS

    save_json(ctx.output_dir / RESULTS, results)
