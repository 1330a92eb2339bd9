from __future__ import annotations

import torch

from mnist_ignite.core.files import load_tensors
from mnist_ignite.testing import run_plugin

# lr 1e-9: nothing improves after epoch 1, so patience N stops after epoch N + 1
STALLED = {"lr": 1e-9, "train": 128, "test": 64}


def test_stops_after_patience_epochs_without_improvement() -> None:
    run = run_plugin(handlers=["early_stopping"], epochs=10, options={"patience": 2}, **STALLED)
    assert [r["epoch"] for r in run.rows] == [1, 2, 3]
    assert run.outcome.stopped_at == (3, 6)
    assert "final_model.pt" in run.files


def test_its_state_survives_a_resume(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "es"
    handlers = ["checkpoint", "early_stopping"]
    run_plugin(handlers=handlers, epochs=2, options={"patience": 3}, output_dir=out, **STALLED)
    saved = load_tensors(sorted((out / "checkpoints").glob("last_*.pt"))[-1])
    assert saved["plugins"]["early_stopping"]["counter"] == 1  # epoch 2 did not improve on epoch 1
    run = run_plugin(handlers=handlers, epochs=10, options={"patience": 3}, output_dir=out, resume="auto", **STALLED)
    # a fresh counter would have run to epoch 5; the restored one stops at epoch 4
    assert [r["epoch"] for r in run.rows] == [1, 2, 3, 4]
    assert torch.load(out / "final_model.pt", weights_only=True)["head.bias"].shape == (10,)
