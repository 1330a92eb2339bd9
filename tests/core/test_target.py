"""Time-to-accuracy: the stop at the epoch that reaches the target, and when it did, on a real engine and a real run."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from ignite.engine import Engine, Events

from mnist_ignite.core.target import TimeToAccuracy
from mnist_ignite.plugins.events import RunEvents
from mnist_ignite.testing import run_plugin


def engine_with_accuracies(accuracies: list[float], step_seconds: float = 0.0) -> Engine:
    """A trainer whose epoch ``e`` records ``test_acc = accuracies[e - 1]``; ``EPOCH_END`` fires as in ``build_run``."""

    def step(_: Engine, __: int) -> None:
        time.sleep(step_seconds)

    engine = Engine(step)
    engine.register_events(*RunEvents)

    @engine.on(Events.EPOCH_COMPLETED)
    def record(e: Engine) -> None:
        e.state.record = {"epoch": e.state.epoch, "test_acc": accuracies[e.state.epoch - 1]}
        e.fire_event(RunEvents.EPOCH_END)

    return engine


@pytest.mark.parametrize(
    ("target", "stop_epoch"),
    [(90.0, 3), (95.0, 3), (50.0, 1), (99.5, None)],  # 95 reached exactly counts
)
def test_the_run_stops_at_the_first_epoch_that_reaches_the_target(target: float, stop_epoch: int | None) -> None:
    accuracies = [50.0, 80.0, 95.0, 99.0]
    engine = engine_with_accuracies(accuracies)
    watch = TimeToAccuracy(target)
    watch.attach(SimpleNamespace(trainer=engine))
    engine.run(range(3), max_epochs=len(accuracies))
    assert engine.state.epoch == (stop_epoch or len(accuracies))
    if stop_epoch is None:
        assert watch.reached is None
    else:
        assert watch.reached is not None
        assert (watch.reached["target_acc"], watch.reached["target_reached_epoch"]) == (target, stop_epoch)


def test_the_seconds_count_from_the_first_step_to_the_epoch_that_reached_it() -> None:
    """Three epochs of 4 steps of 10 ms: at least 0.12 s, and not the time spent before the run started."""
    engine = engine_with_accuracies([10.0, 20.0, 30.0], step_seconds=0.01)
    watch = TimeToAccuracy(30.0)
    watch.attach(SimpleNamespace(trainer=engine))
    time.sleep(0.1)  # attached long before training starts (data loading, plugins)
    started = time.perf_counter()
    engine.run(range(4), max_epochs=5)
    ran = time.perf_counter() - started
    assert watch.reached is not None and watch.reached["target_reached_epoch"] == 3
    assert 0.12 <= watch.reached["target_reached_seconds"] <= round(ran, 3) + 0.001


def test_a_real_run_records_the_target_in_its_results() -> None:
    """``--target-acc`` stops a run early and ``results.json`` says when; the epoch was still recorded."""
    run = run_plugin(epochs=3, target_acc=1.0)  # chance is 10%: reached at epoch 1
    assert [row["epoch"] for row in run.rows] == [1]
    assert run.outcome.stopped_at == (1, run.iterations)
    results = run.outcome.results
    assert results is not None and results["target_acc"] == 1.0 and results["target_reached_epoch"] == 1
    assert 0 < results["target_reached_seconds"] < 30
    assert run.ctx.target.reached["target_reached_seconds"] == results["target_reached_seconds"]
