"""Several processes on one machine or several: ``ignite.distributed.Parallel``, with its failures in one line.

``Parallel`` spawns the ranks through ``torch.multiprocessing``; when one rank dies (``kill -9``,
the OOM killer) or raises, the spawner ends the others and raises ``ProcessExitedException`` or
``ProcessRaisedException`` (the rank's whole traceback as text). :func:`run_ranks` turns those into
:class:`~mnist_ignite.errors.RankFailed`: which rank, how it ended, and whether the run folder holds
a checkpoint to resume from. The spawner's and Ignite's own INFO lines (launcher parameters,
"Apply torch DistributedDataParallel") and the spawner's "Terminating process" warnings are not
shown: the run's header and that one line say it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ignite.distributed as idist
from torch.multiprocessing.spawn import ProcessException, ProcessExitedException

from mnist_ignite import errors
from mnist_ignite.core.checkpoint import has_checkpoints
from mnist_ignite.core.signals import SIGNALS
from mnist_ignite.errors import ForcedStop, Interrupted, MnistIgniteError, RankFailed, RunFailed

__all__ = ["QUIET_LOGGERS", "quiet_distributed_logs", "rank_failure", "run_ranks"]

# loggers whose INFO lines repeat what the run's header says (Ignite re-creates them at INFO level each time)
QUIET_LOGGERS = (
    "ignite.distributed.launcher.Parallel",
    "ignite.distributed.auto.auto_model",
    "ignite.distributed.auto.auto_dataloader",
    "ignite.distributed.auto.auto_optim",
    "torch.multiprocessing.spawn",
)


def _warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING and not record.getMessage().startswith("Terminating process")


def quiet_distributed_logs() -> None:
    """Drop the launcher's INFO lines and the spawner's "Terminating process" warnings, in this process.

    A filter on each logger, not a level: Ignite's ``setup_logger`` sets the level again whenever it runs.
    Each rank calls it too (a spawned process starts with fresh loggers).
    """
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if _warnings_only not in logger.filters:
            logger.addFilter(_warnings_only)


_LAST_LINE = re.compile(r"^(?P<module>[\w.]+)\.(?P<name>\w+): (?P<message>.*)$")


def rank_failure(err: Exception, output_dir: Path) -> BaseException:
    """The one-line error for a rank that died or raised (``err`` from the spawner)."""
    rank = getattr(err, "error_index", "?")
    resumable = has_checkpoints(output_dir)
    if isinstance(err, ProcessExitedException):
        how = err.signal_name or f"exit code {err.exit_code}"
        return RankFailed(f"rank {rank} died ({how})", output_dir, resumable)
    lines = [line for line in str(err).splitlines() if line.strip()]
    last = lines[-1] if lines else type(err).__name__
    found = _LAST_LINE.match(last)
    if found and found["module"] == errors.__name__:
        cls = getattr(errors, found["name"], None)
        name = found["message"].split(" ", 1)[0]
        if cls in (Interrupted, ForcedStop) and name in signal.Signals.__members__:
            # each rank stopped on the signal (and saved): the run resumes as after one process
            return (
                Interrupted(signal.Signals[name], output_dir)
                if cls is Interrupted
                else ForcedStop(signal.Signals[name])
            )
        if isinstance(cls, type) and issubclass(cls, MnistIgniteError):
            try:
                rebuilt = cls(f"rank {rank}: {found['message']}")
            except TypeError:  # an error class with its own arguments: its text and exit code as they were
                rebuilt = RunFailed(f"rank {rank}: {found['message']}")
                rebuilt.label, rebuilt.exit_code = cls.label, cls.exit_code
            return rebuilt
    text = f"{found['name']}: {found['message']}" if found else last
    return RankFailed(f"rank {rank} failed: {text}", output_dir, resumable)


@contextlib.contextmanager
def _signals_for_the_ranks() -> Iterator[None]:
    """While the ranks run, this (waiting) process leaves a signal to them: each stops at its next safe point
    and saves, and the spawner reports how they ended. Ctrl-C and a closed terminal reach every process of
    the foreground group already; a SIGTERM sent to this process alone is passed on to the ranks."""

    def handle(signum: int, _frame: Any) -> None:
        if signum == signal.SIGTERM:
            for child in multiprocessing.active_children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)

    previous = {}
    for sig in SIGNALS:
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_ranks(func: Callable[..., None], args: tuple[Any, ...], output_dir: Path, backend: str, **spawn: Any) -> None:
    """``func(local_rank, *args)`` in every rank of ``Parallel(backend, **spawn)``; a rank's failure is one line."""
    quiet_distributed_logs()
    with idist.Parallel(backend=backend, **spawn) as parallel, _signals_for_the_ranks():
        try:
            parallel.run(func, *args)
        except ProcessException as err:
            raise rank_failure(err, output_dir) from None
