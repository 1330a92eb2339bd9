from __future__ import annotations

from mnist_ignite.testing import run_plugin


def test_stops_cleanly_with_a_checkpoint_and_resumes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "tl"
    handlers = ["checkpoint", "time_limit"]
    run = run_plugin(handlers=handlers, epochs=10_000, options={"time_limit": 1}, output_dir=out, train=128)
    assert run.outcome.stopped_at is not None and run.iterations < 2 * 10_000
    saved = [int(p.stem.split("_")[-1]) for p in (out / "checkpoints").glob("last_*.pt")]
    assert max(saved) == run.iterations  # saved where it stopped, mid-epoch or not
    assert "final_model.pt" in run.files
    done = len(run.rows)
    more = run_plugin(handlers=["checkpoint"], epochs=done + 1, output_dir=out, train=128, resume="auto")
    assert [r["epoch"] for r in more.rows] == list(range(1, done + 2))
