from __future__ import annotations

from pathlib import Path

import pytest

from mnist_ignite.cli import main

from conftest import small_args


def test_bar_shows_loss_and_running_accuracy(data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(small_args(data_dir, tmp_path / "p", "--epochs", "1", "--progress-always", train=256, eval_=64)) == 0
    captured = capsys.readouterr()
    assert "train" in captured.err and "loss=" in captured.err and "acc=" in captured.err
    assert "epoch   1/1" in captured.out  # the per-epoch line stays


def test_no_bar_when_not_a_terminal(data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(small_args(data_dir, tmp_path / "q", "--epochs", "1", train=128, eval_=64)) == 0
    assert "loss=" not in capsys.readouterr().err
