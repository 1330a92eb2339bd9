from __future__ import annotations

from pathlib import Path

from mnist_ignite.cli import main

from conftest import metrics, small_args


def test_stops_cleanly_and_resumes(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "tl"
    args = small_args(
        data_dir, out, "--epochs", "50", "--handler", "time_limit", "--time-limit", "2", train=256, eval_=64
    )
    assert main(args) == 0
    done = len(metrics(out))
    assert 0 < done < 50 and (out / "final_model.pt").is_file()
    assert list((out / "checkpoints").glob("last_*.pt"))
    more = small_args(data_dir, out, "--epochs", str(done + 1), "--resume", "auto", train=256, eval_=64)
    assert main(more) == 0
    assert [r["epoch"] for r in metrics(out)] == list(range(1, done + 2))
