"""The core's own trainer events, and the "inside an epoch" event (see :mod:`mnist_ignite.plugins`).

Ignite's events plus two of the core's own need no ordering numbers between plugins:

=============================  ====================================================================
``RunEvents.READY``            every plugin is attached, before the first step (resume happens here)
``RunEvents.EPOCH_END``        after every ``EPOCH_COMPLETED`` handler: the epoch is complete, its
                               row recorded (checkpoints are saved here)
=============================  ====================================================================
"""

from __future__ import annotations

from ignite.engine import CallableEventWithFilter, Engine, EventEnum, Events

__all__ = ["RunEvents", "inside_epoch"]


class RunEvents(EventEnum):
    """``READY``: every plugin attached, before the first step (resume happens here).
    ``EPOCH_END``: after every ``EPOCH_COMPLETED`` handler (the epoch is complete: checkpoints save here).
    """

    READY = "ready"
    EPOCH_END = "epoch_end"


def inside_epoch(every: int = 1) -> CallableEventWithFilter:
    """``ITERATION_COMPLETED`` every ``every`` iterations, except an epoch's last one.

    Where a run may safely stop or save mid-epoch: after an epoch's last iteration comes its
    evaluation and row, so that moment belongs to ``RunEvents.EPOCH_END`` instead.
    """

    def inside(engine: Engine, iteration: int) -> bool:
        return iteration % every == 0 and iteration % engine.state.epoch_length != 0

    return Events.ITERATION_COMPLETED(event_filter=inside)
