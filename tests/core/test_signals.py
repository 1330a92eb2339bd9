"""SignalStop on a real Ignite engine, with real signals sent to this process from inside a handler."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from ignite.engine import Engine, Events

from mnist_ignite.core.signals import SIGNALS, SignalStop
from mnist_ignite.errors import ForcedStop
from mnist_ignite.plugins.events import RunEvents

EPOCH_LENGTH = 5


def trainer(events: list[str]) -> Engine:
    """An engine wired as ``build_run`` wires the trainer: ``EPOCH_END`` after every ``EPOCH_COMPLETED`` handler."""
    engine = Engine(lambda e, batch: None)
    engine.register_events(*RunEvents)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: events.append(f"row {e.state.epoch}"))
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.fire_event(RunEvents.EPOCH_END))
    engine.add_event_handler(Events.TERMINATE, lambda e: events.append("terminate"))
    return engine


def send_at(engine: Engine, iteration: int, *signums: int) -> None:
    def send(_: Engine) -> None:
        for signum in signums:
            os.kill(os.getpid(), signum)

    engine.add_event_handler(Events.ITERATION_COMPLETED(once=iteration), send)


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_mid_epoch_stops_after_that_iteration(signum: int) -> None:
    events: list[str] = []
    engine = trainer(events)
    send_at(engine, 2, signum)
    with SignalStop(engine) as stop:
        engine.run(range(EPOCH_LENGTH), max_epochs=3)
    assert stop.signum == signum
    assert (engine.state.epoch, engine.state.iteration) == (1, 2)
    assert events == ["terminate"]  # TERMINATE fires (the checkpoint saves there), no row for a half epoch


def test_a_signal_at_an_epochs_last_iteration_waits_for_its_row() -> None:
    """Stopping before EPOCH_COMPLETED would save a checkpoint that counts the epoch without its row."""
    events: list[str] = []
    engine = trainer(events)
    send_at(engine, EPOCH_LENGTH, signal.SIGTERM)
    with SignalStop(engine) as stop:
        engine.run(range(EPOCH_LENGTH), max_epochs=3)
    assert stop.signum == signal.SIGTERM
    assert (engine.state.epoch, engine.state.iteration) == (1, EPOCH_LENGTH)
    assert events == ["row 1", "terminate"]


def test_a_second_signal_stops_at_once() -> None:
    engine = trainer([])
    send_at(engine, 2, signal.SIGINT, signal.SIGINT)
    with pytest.raises(ForcedStop) as stopped, SignalStop(engine):
        engine.run(range(EPOCH_LENGTH), max_epochs=3)
    assert stopped.value.signum == signal.SIGINT and isinstance(stopped.value, KeyboardInterrupt)
    assert engine.state.iteration == 2


def test_the_previous_handlers_and_the_trainers_handlers_are_restored() -> None:
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    engine = trainer([])
    with SignalStop(engine) as stop:
        assert all(signal.getsignal(sig) == stop._handle for sig in SIGNALS)
        assert engine.has_event_handler(stop._stop, RunEvents.EPOCH_END)
    assert {sig: signal.getsignal(sig) for sig in SIGNALS} == before
    assert not engine.has_event_handler(stop._stop, RunEvents.EPOCH_END)
    assert not engine.has_event_handler(stop._stop_inside, Events.ITERATION_COMPLETED)
    engine.run(range(EPOCH_LENGTH), max_epochs=2)  # no stop left behind
    assert engine.state.epoch == 2


def test_off_the_main_thread_signals_are_left_alone() -> None:
    """A run in a worker thread (a notebook's background run) cannot install handlers: it trains without them."""
    before = signal.getsignal(signal.SIGTERM)
    seen: dict[str, object] = {}

    def run() -> None:
        engine = trainer([])
        with SignalStop(engine) as stop:
            seen["inside"] = signal.getsignal(signal.SIGTERM)
            engine.run(range(EPOCH_LENGTH), max_epochs=1)
        seen["previous"], seen["epoch"] = stop.previous, engine.state.epoch

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert seen == {"inside": before, "previous": {}, "epoch": 1}
