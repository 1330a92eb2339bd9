"""Repeats over seeds: one ordinary run folder per seed, summary.json with mean ± std, time-to-accuracy counts."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from mnist_ignite.cli import main
from mnist_ignite.config.settings import Config
from mnist_ignite.experiments.repeats import seeds_of, summarize_seeds

from conftest import metrics, small_args


def test_seeds_come_from_repeat_or_the_list() -> None:
    assert seeds_of(Config(seed=5, repeat=3)) == [5, 6, 7]
    assert seeds_of(Config(seeds="3,1,2")) == [3, 1, 2]


def test_three_seeds_give_three_runs_and_their_statistics(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rep"
    args = small_args(data_dir, out, "--epochs", "2", "--repeat", "3", "--target-acc", "20", train=256, eval_=128)
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [1, 2, 3]
    finals = [metrics(out / f"seed-{s}")[-1]["test_acc"] for s in (1, 2, 3)]
    assert summary["final_test_acc"]["mean"] == pytest.approx(statistics.fmean(finals))
    assert summary["final_test_acc"]["std"] == pytest.approx(statistics.stdev(finals))
    assert summary["final_test_acc"]["min"] == min(finals) and summary["final_test_acc"]["max"] == max(finals)
    reached = [r for r in summary["runs"] if r["target_reached_epoch"] is not None]
    assert summary["target"]["reached"] == len(reached) and summary["target"]["of"] == 3
    printed = capsys.readouterr().out
    assert "final test accuracy:" in printed and "± " in printed and "over 3 seed(s)" in printed
    assert main(args) == 2  # the folder holds a repeat now: refused like any run folder


def test_summary_of_target_counts_only_seeds_that_reached_it() -> None:
    runs = [
        {"seed": 1, "final_test_acc": 99.0, "best_test_acc": 99.1, "total_seconds": 10.0, "target_reached_epoch": 3,
         "target_reached_seconds": 8.0},
        {"seed": 2, "final_test_acc": 98.0, "best_test_acc": 98.5, "total_seconds": 12.0, "target_reached_epoch": None,
         "target_reached_seconds": None},
        {"seed": 3, "final_test_acc": 99.2, "best_test_acc": 99.3, "total_seconds": 11.0, "target_reached_epoch": 2,
         "target_reached_seconds": 6.0},
    ]  # fmt: skip
    summary = summarize_seeds(runs, 99.0)
    assert summary["target"] == {"target_acc": 99.0, "reached": 2, "of": 3, "median_seconds": 7.0}
    assert summary["best_test_acc"]["max"] == 99.3
