"""``train(config) -> rows``: what ``mnist-ignite`` does with its settings, as a function.

One run (:func:`run_once`) is the core's :func:`~mnist_ignite.core.launch.launch` with what the
command line adds around it: the console report (header, epoch lines, footer), the lr finder for
``--lr auto``, and the fast-dev-run summary. :func:`train` also runs ``--repeat``/``--seeds`` (one
run per seed, :mod:`mnist_ignite.experiments.repeats`). Sweep trials run through :func:`run_once` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mnist_ignite.config.settings import Config
from mnist_ignite.core.launch import Outcome, launch
from mnist_ignite.experiments.lr_find import lr_for_run
from mnist_ignite.experiments.repeats import run_repeats
from mnist_ignite.log import write_line
from mnist_ignite.reporting.console import ConsoleReport, fast_dev_run_summary, footer

__all__ = ["run_once", "train"]


def run_once(config: Config, plugins: Sequence[Any] = (), report: bool = True) -> Outcome:
    """Train ``config`` once; with ``report``, print its header, epoch lines and footer."""
    extra = [*plugins, ConsoleReport()] if report else list(plugins)
    outcome = launch(config, extra, lr_finder=lr_for_run)
    if not report:
        return outcome
    if outcome.fast_dev_run:
        write_line(fast_dev_run_summary(outcome))
        return outcome
    reached = (outcome.results or {}).get("target_reached_epoch") is not None
    if outcome.stopped_at and not reached:
        epoch, iteration = outcome.stopped_at
        write_line(f"stopped early by a handler at epoch {epoch}, iteration {iteration}; --resume auto continues it")
    write_line(footer(outcome))
    return outcome


def train(config: Config, plugins: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run ``config`` as ``mnist-ignite`` would and return the per-epoch rows (the last seed's for repeats).

    Args:
        config: the settings (``Config(...)`` or :func:`mnist_ignite.config.argv.parse_config`).
        plugins: ready-made plugin objects (or ``attach(ctx)`` functions) to attach besides
            ``config.handlers``.
    """
    if config.repeat or config.seeds:
        summary = run_repeats(config, plugins, run_once)
        return summary.get("last_rows", [])
    return run_once(config, plugins).rows
