"""The core's own trainer events, registered on every run's trainer (see :mod:`mnist_ignite.plugins`)."""

from __future__ import annotations

from ignite.engine import EventEnum

__all__ = ["RunEvents"]


class RunEvents(EventEnum):
    """``READY``: every plugin attached, before the first step (resume happens here).
    ``EPOCH_END``: after every ``EPOCH_COMPLETED`` handler (the epoch is complete: checkpoints save here).
    """

    READY = "ready"
    EPOCH_END = "epoch_end"
