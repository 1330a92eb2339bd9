"""The core's own events, in the order a real run fires them, and the "inside an epoch" filter."""

from __future__ import annotations

import pytest
from ignite.engine import Engine, Events

from mnist_ignite.plugins import RunContext, RunEvents, inside_epoch
from mnist_ignite.testing import run_plugin


@pytest.mark.parametrize(
    ("every", "fired"),
    [(1, [1, 2, 3, 5, 6, 7, 9, 10, 11]), (2, [2, 6, 10]), (3, [3, 6, 9]), (4, [])],
)
def test_inside_epoch_skips_each_epochs_last_iteration(every: int, fired: list[int]) -> None:
    """An epoch's last iteration belongs to EPOCH_END (its evaluation and row come first)."""
    engine = Engine(lambda e, batch: None)
    seen: list[int] = []
    engine.add_event_handler(inside_epoch(every), lambda e: seen.append(e.state.iteration))
    engine.run(range(4), max_epochs=3)
    assert seen == fired


def test_run_events_are_ignite_events_of_their_own() -> None:
    assert [(e.name, e.value) for e in RunEvents] == [("READY", "ready"), ("EPOCH_END", "epoch_end")]
    engine = Engine(lambda e, batch: None)
    engine.register_events(*RunEvents)
    fired: list[str] = []
    engine.add_event_handler(RunEvents.READY, lambda: fired.append("ready"))
    engine.fire_event(RunEvents.READY)
    engine.run(range(2), max_epochs=1)  # Ignite itself never fires them
    assert fired == ["ready"]


def test_a_real_run_fires_ready_once_then_epoch_end_after_each_epochs_handlers() -> None:
    events: list[str] = []

    def order(ctx: RunContext) -> None:
        trainer = ctx.trainer
        for event in (RunEvents.READY, Events.STARTED, Events.EPOCH_COMPLETED, RunEvents.EPOCH_END, Events.COMPLETED):
            trainer.add_event_handler(event, lambda e, name=event.name: events.append(name))
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: events.append(f"row {e.state.record['epoch']}"))

    order.name = "order"  # type: ignore[attr-defined]
    run_plugin(order, epochs=2, train=128)
    assert events == [
        "READY",
        "STARTED",
        "EPOCH_COMPLETED",
        "row 1",  # the row is there for every EPOCH_COMPLETED handler, and EPOCH_END comes after them all
        "EPOCH_END",
        "EPOCH_COMPLETED",
        "row 2",
        "EPOCH_END",
        "COMPLETED",
    ]
