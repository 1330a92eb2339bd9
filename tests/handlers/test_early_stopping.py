from __future__ import annotations

from pathlib import Path

import torch

from mnist_ignite.cli import main
from mnist_ignite.core.files import load_tensors

from conftest import metrics, small_args


def test_stops_after_patience_epochs_without_improvement(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "es"
    # lr 1e-9: nothing improves after epoch 1, so patience 2 stops after epoch 3
    args = small_args(
        data_dir,
        out,
        "--epochs",
        "10",
        "--lr",
        "1e-9",
        "--handler",
        "early_stopping",
        "--patience",
        "2",
        train=128,
        eval_=64,
    )
    assert main(args) == 0
    assert [r["epoch"] for r in metrics(out)] == [1, 2, 3]
    assert (out / "final_model.pt").is_file()


def test_its_state_survives_a_resume(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "es"
    common = ("--lr", "1e-9", "--handler", "early_stopping", "--patience", "3")
    assert main(small_args(data_dir, out, "--epochs", "2", *common, train=128, eval_=64)) == 0
    saved = load_tensors(sorted((out / "checkpoints").glob("last_*.pt"))[-1])
    assert saved["plugins"]["early_stopping"]["counter"] == 1  # epoch 2 did not improve on epoch 1
    assert main(small_args(data_dir, out, "--epochs", "10", "--resume", "auto", *common, train=128, eval_=64)) == 0
    # a fresh counter would have run to epoch 5; the restored one stops at epoch 4
    assert [r["epoch"] for r in metrics(out)] == [1, 2, 3, 4]
    assert torch.load(out / "final_model.pt", weights_only=True)["fc2.bias"].shape == (10,)
