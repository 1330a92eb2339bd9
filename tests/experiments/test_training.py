"""``train(config)``: one run with its console report (or none), a run stopped early, a fast dev run, repeats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ignite.engine import Events

from mnist_ignite.config.settings import Config
from mnist_ignite.experiments.training import run_once, train
from mnist_ignite.reporting.console import ConsoleReport, fast_dev_run_summary, footer
from mnist_ignite.testing import fake_mnist


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_mnist(tmp_path_factory.mktemp("digits"), train=128, test=64)


def config(data: Path, out: Path, **values: Any) -> Config:
    """A tiny CPU run of TinyNet with the history handler only."""
    values = {"epochs": 1, "handlers": ["history"]} | values
    return Config(data_dir=str(data), download=False, device="cpu", model="mnist_ignite.testing:TinyNet",
                  output_dir=str(out), **values)  # fmt: skip


def test_train_returns_the_rows_and_prints_epoch_lines_and_the_footer(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = train(config(data, tmp_path / "run", epochs=2))
    assert rows == json.loads((tmp_path / "run" / "metrics.json").read_text()) and len(rows) == 2
    out = capsys.readouterr().out
    assert "epoch   1/2" in out and "epoch   2/2" in out and "stopped early" not in out


def test_without_the_report_nothing_is_printed(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Sweep trials run this way: the outcome only."""
    outcome = run_once(config(data, tmp_path / "run"), report=False)
    assert [r["epoch"] for r in outcome.rows] == [1] and (tmp_path / "run" / "final_model.pt").is_file()
    assert capsys.readouterr().out == ""
    assert ConsoleReport.name not in {c.plugin for c in outcome.handler_calls}


class StopAt:
    """Ends the run at a given iteration, as early stopping or a time limit does."""

    name = "stop_at"

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def attach(self, ctx: Any) -> None:
        ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED(once=self.iteration), lambda e: e.terminate())


def test_a_run_stopped_by_a_handler_says_so_and_how_to_continue(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run_once(config(data, tmp_path / "run", epochs=2), [StopAt(3)])  # 2 iterations per epoch
    assert outcome.stopped_at == (2, 3) and ConsoleReport.name in {c.plugin for c in outcome.handler_calls}
    out = capsys.readouterr().out
    line = "stopped early by a handler at epoch 2, iteration 3; --resume auto continues it\n"
    assert out.endswith(line + footer(outcome) + "\n")


def test_reaching_the_target_is_not_reported_as_stopped_early(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run_once(config(data, tmp_path / "run", epochs=2, target_acc=0.1))  # any model gets 0.1%
    assert outcome.stopped_at is not None and outcome.results and outcome.results["target_reached_epoch"] == 1
    out = capsys.readouterr().out
    assert "stopped early" not in out and out.endswith(footer(outcome) + "\n")


def test_a_fast_dev_run_prints_its_summary_instead_of_the_footer(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = run_once(config(data, tmp_path / "run", fast_dev_run=1))
    assert outcome.fast_dev_run == 1
    assert capsys.readouterr().out.endswith(fast_dev_run_summary(outcome) + "\n")
    assert not (tmp_path / "run").exists()  # nothing is kept


def test_repeats_run_each_seed_and_return_the_last_seeds_rows(data: Path, tmp_path: Path) -> None:
    rows = train(config(data, tmp_path / "rep", seeds="3,5"))
    assert sorted(p.name for p in (tmp_path / "rep").iterdir() if p.is_dir()) == ["seed-3", "seed-5"]
    assert rows == json.loads((tmp_path / "rep" / "seed-5" / "metrics.json").read_text())
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["seeds"] == [3, 5]
