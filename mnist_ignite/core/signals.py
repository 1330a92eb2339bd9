"""Stopping a run cleanly on SIGINT, SIGTERM or SIGHUP: finish the iteration, save, tell how to resume.

The first signal asks the trainer to stop at the next safe point: the end of an iteration inside
an epoch, or the end of the epoch's own handlers (evaluation, history, checkpoint). Stopping after
an epoch's last iteration but before its ``EPOCH_COMPLETED`` would leave a checkpoint that counts
the epoch as done without its row. Ignite's ``TERMINATE`` then fires (the checkpoint plugin saves
there) and the run raises :class:`~mnist_ignite.errors.Interrupted` (exit 128 + signal). A second
signal stops at once, without saving (:class:`ForcedStop`). SIGHUP (the terminal closed) is a
SIGTERM: the work is saved, not lost. In a distributed run the ranks agree every
:data:`AGREE_EVERY` iterations and at each epoch end (a one-number ``all_reduce``), so they all stop at the
same point, and rank 0's checkpoint holds it.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any

import ignite.distributed as idist
from ignite.engine import Engine

from mnist_ignite.errors import ForcedStop
from mnist_ignite.plugins.events import RunEvents, inside_epoch

__all__ = ["SIGNALS", "SignalStop"]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
AGREE_EVERY = 10  # iterations between the ranks' agreements on whether to stop (and at every epoch end)


class SignalStop:
    """While the trainer runs, the first of :data:`SIGNALS` stops it at the next safe point; see the module docstring.

    The two safe points are separate handlers: ``last_event_name`` cannot tell them apart (Ignite's
    Checkpoint fires its own ``SAVED_CHECKPOINT`` event in between).
    """

    def __init__(self, trainer: Engine) -> None:
        self.trainer, self.signum = trainer, 0
        self.previous: dict[int, Any] = {}
        self.inside = inside_epoch()
        self.world = idist.get_world_size()

    def __enter__(self) -> SignalStop:
        for sig in SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self.previous[sig] = signal.signal(sig, self._handle)
        # registered after every plugin, so they all see the event before the stop
        self.trainer.add_event_handler(self.inside, self._stop_inside)
        self.trainer.add_event_handler(RunEvents.EPOCH_END, self._stop)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum:
            raise ForcedStop(signum)
        self.signum = signum

    def _stop_inside(self, engine: Engine) -> None:
        # the ranks agree every AGREE_EVERY iterations: a host sync at every step would slow a GPU run
        if self.world == 1 or engine.state.iteration % AGREE_EVERY == 0:
            self._stop(engine)

    def _stop(self, engine: Engine) -> None:
        signum = self.signum
        if self.world > 1:  # every rank stops at the same point, even when the signal reached them apart
            signum = int(idist.all_reduce(signum, op="MAX"))
        if signum:
            self.signum = signum
            engine.terminate()

    def __exit__(self, *exc: Any) -> None:
        self.trainer.remove_event_handler(self._stop_inside, self.inside)
        self.trainer.remove_event_handler(self._stop, RunEvents.EPOCH_END)
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
