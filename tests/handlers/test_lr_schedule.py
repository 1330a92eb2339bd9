from __future__ import annotations

from pathlib import Path

import pytest

from mnist_ignite.cli import main

from conftest import metrics, small_args


def lrs(data_dir: str, out: Path, *extra: str, epochs: int = 4) -> list[float]:
    args = small_args(data_dir, out, "--epochs", str(epochs), *extra, "--no-handler", "checkpoint", train=128, eval_=64)
    assert main(args) == 0
    return [r["lr"] for r in metrics(out)]


def test_step_is_the_seeds_steplr_per_epoch(data_dir: str, tmp_path: Path) -> None:
    got = lrs(data_dir, tmp_path / "a", "--step-size", "2", "--gamma", "0.5", epochs=5)
    assert got == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_per_iteration_schedules_move_the_lr(schedule: str, data_dir: str, tmp_path: Path) -> None:
    got = lrs(data_dir, tmp_path / schedule, "--lr-schedule", schedule)
    assert len(set(got)) == 4 and got[-1] < max(got)


def test_cosine_ends_at_min_lr(data_dir: str, tmp_path: Path) -> None:
    got = lrs(data_dir, tmp_path / "c", "--lr-schedule", "cosine", "--min-lr", "0.001")
    assert got == sorted(got, reverse=True)
    assert got[-1] == pytest.approx(0.001, abs=5e-4)  # the last of 8 iterations sits just above the floor


def test_plateau_decays_when_accuracy_stalls(data_dir: str, tmp_path: Path) -> None:
    # lr 1e-6 barely moves the weights: test accuracy stalls, so the lr is cut after `patience` epochs
    got = lrs(data_dir, tmp_path / "p", "--lr-schedule", "plateau", "--plateau-patience", "1", "--lr", "1e-6", epochs=5)
    assert got[0] == pytest.approx(1e-6) and got[-1] < 1e-6


def test_none_keeps_the_lr(data_dir: str, tmp_path: Path) -> None:
    assert lrs(data_dir, tmp_path / "n", "--lr-schedule", "none", "--lr", "0.02", epochs=2) == [0.02, 0.02]


def test_warmup_starts_low_and_reaches_the_lr(data_dir: str, tmp_path: Path) -> None:
    got = lrs(data_dir, tmp_path / "w", "--warmup-iters", "3", epochs=2)  # 2 iterations per epoch
    assert got[0] < 0.01 and got[1] == pytest.approx(0.01)


def test_bad_schedule_values_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--lr-schedule", "zigzag"])
    assert exc.value.code == 2
    assert main(["--step-size", "0"]) == 2
    assert "handler 'lr_schedule': step-size must be >= 1" in capsys.readouterr().err
