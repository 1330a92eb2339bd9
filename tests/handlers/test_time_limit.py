from __future__ import annotations

from pathlib import Path

from mnist_ignite.cli import main

from conftest import metrics, small_args


def test_stops_cleanly_and_resumes(data_dir: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "tl"
    args = small_args(
        data_dir, out, "--epochs", "1000", "--handler", "time_limit", "--time-limit", "3", train=128, eval_=64
    )
    assert main(args) == 0
    assert "stopped early by a handler" in capsys.readouterr().out
    done = len(metrics(out)) if (out / "metrics.json").exists() else 0
    saved = [int(p.stem.split("_")[-1]) for p in (out / "checkpoints").glob("last_*.pt")]
    assert saved and max(saved) < 2 * 1000  # stopped long before the end, with a checkpoint of where
    assert (out / "final_model.pt").is_file()
    more = small_args(data_dir, out, "--epochs", str(done + 1), "--resume", "auto", train=128, eval_=64)
    assert main(more) == 0
    assert [r["epoch"] for r in metrics(out)] == list(range(1, done + 2))
