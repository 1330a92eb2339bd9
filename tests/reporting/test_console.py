"""The console report: header, one line per epoch, footer with every file the run wrote, fast-dev-run summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_ignite.config.settings import Config
from mnist_ignite.core.launch import HandlerCalls, Outcome
from mnist_ignite.plugins.api import Output
from mnist_ignite.reporting.console import epoch_line, fast_dev_run_summary, footer, size_text
from mnist_ignite.testing import run_plugin

ROW = {
    "epoch": 3,
    "lr": 0.01,
    "train_loss": 0.1234,
    "train_acc": 97.5,
    "test_loss": 0.0456,
    "test_acc": 98.76,
    "train_seconds": 12.3,
    "eval_seconds": 0.8,
    "train_images_per_second": 4877.0,
}


@pytest.mark.parametrize(
    ("size", "text"), [(812, "812 bytes"), (40_200, "40.2 KB"), (2_300_000, "2.3 MB"), (1_100_000_000, "1.1 GB")]
)
def test_sizes_read_as_people_read_them(size: int, text: str) -> None:
    assert size_text(size) == text


def test_an_epoch_line_holds_the_rows_numbers() -> None:
    line = epoch_line(ROW, 20)
    assert line.startswith("epoch   3/20  lr 0.01000")
    for part in ("train loss 0.1234 acc  97.50%", "test loss 0.0456 acc  98.76%", "(4,877 img/s)", "eval 0.8s"):
        assert part in line


def test_a_reported_run_prints_its_header_each_epoch_and_the_footer(capsys: pytest.CaptureFixture[str]) -> None:
    from mnist_ignite.reporting.console import ConsoleReport

    run = run_plugin(ConsoleReport(), handlers=["history"], epochs=2)
    out = capsys.readouterr().out
    assert out.startswith("mnist-ignite: mnist_ignite.testing:TinyNet on cpu, pipeline tensor")
    assert "  handlers: history\n" in out  # the report itself is not listed
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["1/2", "2/2"]
    text = footer(run.outcome)
    assert text.startswith("done: final test accuracy")
    assert "metrics.json, metrics.csv" in text and "s start-up" in text


def _outcome(calls: list[HandlerCalls], n: int = 1) -> Outcome:
    return Outcome(config=Config(), rows=[], results=None, handler_calls=calls, fast_dev_run=n)


def test_the_fast_dev_run_summary_names_handlers_that_never_ran_and_why() -> None:
    calls = [
        HandlerCalls("history", {"trainer EPOCH_COMPLETED": 1}),
        HandlerCalls("gradnorm", {"trainer ITERATION_COMPLETED(every=10)": 0}),
        HandlerCalls("silent", {}),
    ]
    text = fast_dev_run_summary(_outcome(calls))
    assert text.splitlines()[0] == (
        "fast-dev-run passed: 1 training batch and 1 evaluation batch went through the model "
        "and the handlers history; nothing was kept"
    )
    assert "  gradnorm: ITERATION_COMPLETED(every=10) never fired in 1 iteration; try --fast-dev-run 10" in text
    assert "  silent: registered no handler" in text
    assert "batches" in fast_dev_run_summary(_outcome(calls, 3)).splitlines()[0]


def test_the_footer_lists_the_declared_outputs_that_exist(tmp_path: Path) -> None:
    outputs = [(Output("metrics.json"), tmp_path / "metrics.json"), (Output("plots/"), tmp_path / "plots")]
    outcome = Outcome(config=Config(output_dir=str(tmp_path)), rows=[], results=None, outputs=outputs)
    assert footer(outcome) == f"  outputs in {tmp_path}: metrics.json, plots/"


def test_log_every_defaults_to_ten_lines_an_epoch_into_a_log_and_none_on_a_terminal() -> None:
    from mnist_ignite.reporting.console import log_every

    assert log_every(None, 938, interactive=False) == 94
    assert log_every(None, 5, interactive=False) == 1
    assert log_every(None, 938, interactive=True) == 0
    assert log_every(0, 938, interactive=False) == 0 and log_every(25, 938, interactive=True) == 25


def test_a_timestamped_line_every_n_iterations(capsys: pytest.CaptureFixture[str]) -> None:
    import re

    from mnist_ignite.reporting.console import ConsoleReport

    run_plugin(ConsoleReport(), train=384, log_every=2)  # 6 iterations of 64
    lines = [line for line in capsys.readouterr().out.splitlines() if " iter " in line]
    assert [line.split(" iter ")[1].split()[0] for line in lines] == ["2/6", "4/6", "6/6"], lines
    shape = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  epoch 1/1  iter \d/6  loss \d\.\d{4}  acc \d+\.\d\d%  [\d,]+ img/s$"
    assert all(re.match(shape, line) for line in lines), lines


def test_the_footer_says_what_opens_each_output_and_what_comes_next(tmp_path: Path) -> None:
    outputs = [
        (Output("final_model.pt"), tmp_path / "final_model.pt"),
        (Output("tensorboard/", "events", "tensorboard --logdir {path}"), tmp_path / "tensorboard"),
    ]
    outcome = Outcome(config=Config(output_dir=str(tmp_path)), rows=[], results=None, outputs=outputs)
    lines = footer(outcome).splitlines()
    assert f"  open tensorboard/ with: tensorboard --logdir {tmp_path / 'tensorboard'}" in lines
    assert f"  next: mnist-ignite evaluate {tmp_path}  (export, predict, compare take it too)" in lines


def test_the_next_command_of_a_run_of_a_model_file_carries_trust_code(tmp_path: Path) -> None:
    """Its config.json names code to import: evaluate refuses it without --trust-code, so the hint says it."""
    outputs = [(Output("final_model.pt"), tmp_path / "final_model.pt")]
    config = Config(output_dir=str(tmp_path), model=f"{tmp_path}/mynet.py:TinyNet")
    lines = footer(Outcome(config=config, rows=[], results=None, outputs=outputs)).splitlines()
    assert f"  next: mnist-ignite evaluate {tmp_path} --trust-code  (export, predict, compare take it too)" in lines
