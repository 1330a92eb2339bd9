from __future__ import annotations

from typing import Any

import pytest

from mnist_ignite.cli import main
from mnist_ignite.testing import run_plugin


def lrs(epochs: int = 4, **options: object) -> list[float]:
    """Each epoch's lr of a tiny run (2 iterations per epoch) with the lr_schedule handler."""
    lr = float(options.pop("lr", 0.01))  # type: ignore[arg-type]
    run = run_plugin(handlers=["lr_schedule"], epochs=epochs, train=128, test=64, lr=lr, options=options)
    return [r["lr"] for r in run.rows]


def test_step_is_the_seeds_steplr_per_epoch() -> None:
    assert lrs(epochs=5, step_size=2, gamma=0.5) == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_per_iteration_schedules_move_the_lr(schedule: str) -> None:
    got = lrs(lr_schedule=schedule)
    assert len(set(got)) == 4 and got[-1] < max(got)


def test_cosine_ends_at_min_lr() -> None:
    got = lrs(lr_schedule="cosine", min_lr=0.001)
    assert got == sorted(got, reverse=True)
    assert got[-1] == pytest.approx(0.001, abs=5e-4)  # the last of 8 iterations sits just above the floor


def test_plateau_decays_when_accuracy_stalls() -> None:
    # lr 1e-6 barely moves the weights: test accuracy stalls, so the lr is cut after `patience` epochs
    got = lrs(epochs=5, lr_schedule="plateau", plateau_patience=1, lr=1e-6)
    assert got[0] == pytest.approx(1e-6) and got[-1] < 1e-6


def test_none_keeps_the_lr() -> None:
    assert lrs(epochs=2, lr_schedule="none", lr=0.02) == [0.02, 0.02]


def test_warmup_starts_low_and_reaches_the_lr() -> None:
    got = lrs(epochs=2, warmup_iters=3)  # 2 iterations per epoch
    assert got[0] < 0.01 and got[1] == pytest.approx(0.01)


def test_bad_schedule_values_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lr-schedule", "zigzag"]) == 2
    assert main(["--step-size", "0"]) == 2
    assert "handler 'lr_schedule': step-size must be >= 1" in capsys.readouterr().err


def test_a_users_ignite_scheduler_makes_the_built_in_schedule_step_aside(caplog: pytest.LogCaptureFixture) -> None:
    """Ignite's docs' warmup recipe, attached by the user's plugin: it alone sets the lr (no stacking)."""
    from ignite.engine import Events
    from ignite.handlers import PiecewiseLinear

    from mnist_ignite.testing import run_plugin

    lrs: list[float] = []

    def warmup(ctx: Any) -> None:
        milestones = [(0, 0.0), (4, 0.05), (8, 0.01)]
        ctx.trainer.add_event_handler(Events.ITERATION_STARTED, PiecewiseLinear(ctx.optimizer, "lr", milestones))
        ctx.trainer.add_event_handler(
            Events.ITERATION_COMPLETED, lambda e: lrs.append(ctx.optimizer.param_groups[0]["lr"])
        )

    with caplog.at_level("INFO", logger="mnist_ignite"):
        run = run_plugin(warmup, handlers=["lr_schedule"], train=512, epochs=1, options={"lr-schedule": "step"})
    assert lrs == pytest.approx([0.0, 0.0125, 0.025, 0.0375, 0.05, 0.04, 0.03, 0.02])  # the user's, alone
    assert "handler warmup schedules the learning rate; the built-in --lr-schedule step steps aside" in caplog.text
    assert "lr_scheduler" not in run.ctx.checkpoint_objects
