"""What the trackers share: a missing package names its extra; a failure warns once and training goes on."""

from __future__ import annotations

from typing import Any

import pytest
from ignite.engine import Engine, Events

from mnist_ignite.config.settings import Config
from mnist_ignite.handlers.trackers.base import EPOCH_SCALARS, TrackerPlugin, flat_settings
from mnist_ignite.testing import run_plugin


class Tracker(TrackerPlugin):
    """A tracker of a package every Python has; its 'server' fails at the given epoch."""

    name = "demo"
    package = "json"
    extra = "demo"

    def __init__(self, fail_at: int = 0) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.logged: list[dict[str, float]] = []

    def attach(self, ctx: Any) -> None:
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, self.guard("logging the epoch", self.epoch))

    def epoch(self, engine: Engine) -> None:
        if engine.state.epoch == self.fail_at:
            raise ConnectionError("the tracking server went away\n<html>a page of details</html>")
        self.logged.append({tag: engine.state.record[key] for key, tag in EPOCH_SCALARS.items()})


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("mnist-ignite: warning: demo:")]


def test_a_missing_package_is_refused_at_construction_naming_the_extra() -> None:
    """Before any data is read: the plugin cannot be built."""

    class Absent(Tracker):
        package = "no_such_tracker_package"

    with pytest.raises(ValueError) as err:
        Absent()
    assert str(err.value) == "the no_such_tracker_package package is missing: pip install 'mnist-ignite[demo]'"
    assert Tracker().failed is False


def test_a_failure_mid_run_warns_once_and_training_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    """A real run: epoch 1 is logged (every scalar of the row), epoch 2 fails, epoch 3 is not tried; all 3 train."""
    tracker = Tracker(fail_at=2)
    run = run_plugin(tracker, epochs=3)
    assert [r["epoch"] for r in run.rows] == [1, 2, 3]
    assert len(tracker.logged) == 1 and tracker.logged[0]["accuracy/test"] == run.rows[0]["test_acc"]
    assert tracker.logged[0]["loss/train"] == run.rows[0]["train_loss"]
    assert _warnings(capsys.readouterr().err) == [
        "mnist-ignite: warning: demo: logging the epoch failed (ConnectionError: the tracking server went away); "
        "demo tracking is off for the rest of the run, training goes on"
    ]


def test_guard_passes_the_arguments_until_the_first_failure(capsys: pytest.CaptureFixture[str]) -> None:
    tracker = Tracker()
    calls: list[tuple[Any, ...]] = []

    def log(value: int, *, step: int) -> str:
        calls.append((value, step))
        if value < 0:
            raise OSError("disk full")
        return "returned"

    guarded = tracker.guard("logging", log)
    assert guarded.__name__ == "log" and guarded(1, step=10) is None
    guarded(-1, step=11)
    guarded(2, step=12)  # off: not called
    tracker.guard("another call", log)(3, step=13)  # every guard of the tracker is off
    assert calls == [(1, 10), (-1, 11)] and tracker.failed
    tracker.fail("closing", RuntimeError("later"))  # a second failure is silent
    assert len(_warnings(capsys.readouterr().err)) == 1


@pytest.mark.parametrize(
    ("message", "shown"),
    [("disk full", "disk full"), ("\n  first line\nsecond", "first line"), ("x" * 500, "x" * 300), ("", "")],
)
def test_the_warning_gives_the_errors_first_line_only(
    message: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Client errors can run to pages (a server's HTML): one line, at most 300 characters of it."""
    Tracker().fail("uploading", OSError(message))
    (line,) = _warnings(capsys.readouterr().err)
    assert f"uploading failed (OSError: {shown}); demo tracking is off" in line


def test_flat_settings_are_scalars_a_tracker_can_log() -> None:
    config = Config(model_args={"width": 16}, handlers=["checkpoint", "history"], options={"patience": 3})
    flat = flat_settings(config)
    assert all(isinstance(v, (str, int, float, bool)) for v in flat.values())
    assert flat["model_args.width"] == 16 and flat["handlers"] == "checkpoint,history" and flat["patience"] == 3
    assert flat["lr"] == 0.01 and flat["resume"] == "None" and flat["max_train_samples"] == "None"
    assert "options" not in flat and "model_args" not in flat
