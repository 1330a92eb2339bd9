"""``mnist-ignite [OPTIONS]``: it lists the handlers, trains in-process, and refuses bad usage in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mnist_ignite.discovery.handlers as discovery
from mnist_ignite.cli import main
from mnist_ignite.config.settings import DEFAULT_HANDLERS
from mnist_ignite.testing import fake_mnist


def test_list_handlers_shows_each_with_its_description_and_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-handlers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == sorted(discovery.available_plugins()) and {"checkpoint", "history", "visdom"} <= set(names)
    for line, name in zip(lines, names, strict=True):
        description = discovery.load_plugin_class(name).description
        assert description and description in line, line
        assert line.endswith(" [default]") == (name in DEFAULT_HANDLERS), line


def test_a_handler_that_cannot_load_is_listed_with_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One broken plugin (an installed entry point whose module is gone) does not hide the others."""
    known = discovery.available_plugins()
    monkeypatch.setattr(discovery, "available_plugins", lambda: known | {"broken": "no_such_module_here:Plugin"})
    assert main(["--list-handlers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(known) + 1
    (broken,) = [line for line in lines if line.startswith("broken ")]
    assert "(cannot load: " in broken and "no_such_module_here" in broken


class Recorder:
    """A ready-made plugin passed to ``main``: it must be attached to the run."""

    name = "recorder"

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def attach(self, ctx: Any) -> None:
        from ignite.engine import Events

        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: self.epochs.append(e.state.epoch))


def test_trains_in_process_with_the_given_plugins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command line becomes a run: its folder, its epoch lines, and the caller's plugins attached."""
    data = fake_mnist(tmp_path / "data", train=128, test=64)
    out = tmp_path / "run"
    argv = ["--data-dir", str(data), "--no-download", "--output-dir", str(out), "--device", "cpu", "--epochs", "2"]
    argv += ["--model", "mnist_ignite.testing:TinyNet", "--no-handler", "plots", "--no-handler", "progress"]
    recorder = Recorder()
    assert main(argv, plugins=[recorder]) == 0
    assert recorder.epochs == [1, 2]
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2] and (out / "final_model.pt").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "mnist_ignite.testing:TinyNet" and "plots" not in config["handlers"]
    printed = capsys.readouterr().out
    assert "epoch   1/2" in printed and "epoch   2/2" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "argument --epochs: must be > 0, got 0"),
        (["--epocs", "2"], "unknown option --epocs (did you mean --epochs?)"),
        (["--lr", "fast"], "argument --lr: 'fast' is not a valid float"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2_before_any_run(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mnist-ignite: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "commands (each has its own --help):" in out
    assert "mnist-ignite evaluate" in out and "mnist-ignite sweep" in out and "--list-handlers" in out


def test_an_unknown_handler_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found after parsing (the handler list is known only then): an error the dispatcher maps to its code."""
    assert main(["--handler", "nosuch", "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnist-ignite: error: unknown handler 'nosuch'; available: checkpoint, ")
    assert err.count("\n") == 1
    assert not (tmp_path / "run").exists()
