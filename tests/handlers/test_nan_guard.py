from __future__ import annotations

from pathlib import Path

import torch

from conftest import run_cli, small_args


def test_huge_lr_stops_with_a_message_and_keeps_only_good_checkpoints(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "nan"
    result = run_cli(
        *small_args(
            data_dir,
            out,
            "--epochs",
            "3",
            "--lr",
            "1e5",
            "--nan-check-every",
            "1",
            "--checkpoint-every-iters",
            "1",
            "--keep-last",
            "10",
            train=512,
            eval_=64,
        )
    )
    assert result.returncode == 1
    assert "loss became NaN/Inf" in result.stderr and "lower --lr (now 100000.0)" in result.stderr
    assert "Traceback" not in result.stderr
    assert f"The last good checkpoint is kept in {out / 'checkpoints'}." in result.stderr
    assert not (out / "final_model.pt").exists()
    for path in (out / "checkpoints").glob("last_*.pt"):
        state = torch.load(path, weights_only=True)
        assert all(torch.isfinite(v).all() for v in state["model"].values()), path.name
