"""What the commands share: one-line usage errors, the common arguments, and which data folder a run means."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mnist_ignite.cli.commands.common import (
    add_data_arg,
    add_device_arg,
    add_precision_arg,
    add_trust_arg,
    command_parser,
    data_dir_of_run,
    precision_of_run,
)
from mnist_ignite.config.settings import Config
from mnist_ignite.core.files import save_json


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("thing", "does a thing")
    add_data_arg(parser)
    add_device_arg(parser)
    add_trust_arg(parser)
    return parser


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {"data_dir": None, "device": "auto", "trust_code": False}),
        (
            ["--data-dir", "mnist", "--device", "cpu", "--trust-code"],
            {"data_dir": "mnist", "device": "cpu", "trust_code": True},
        ),
    ],
)
def test_the_common_arguments_and_their_defaults(argv: list[str], expected: dict) -> None:
    """No --data-dir is None (not the default folder): the command then asks the run which folder it used."""
    assert vars(_parser().parse_args(argv)) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trust"], "unknown option --trust (did you mean --trust-code?)"),  # never abbreviated
        (["--device", "gpu 0"], "argument --device: 'gpu 0' is not a device"),
        (["--epochs", "2"], "unknown option --epochs"),
    ],
)
def test_usage_errors_are_one_line_naming_the_command(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mnist-ignite thing: error: {message}") and err.endswith("(see mnist-ignite thing --help)\n")
    assert err.count("\n") == 1


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: mnist-ignite thing ") and "(default: auto)" in out and "$MNIST_IGNITE_DATA" in out


def _run(folder: Path, data_dir: object) -> Path:
    """A run folder whose config.json records ``data_dir`` (as a run writes it)."""
    save_json(folder / "config.json", Config().to_dict() | {"data_dir": data_dir})
    return folder


@pytest.mark.parametrize(
    ("given", "recorded", "expected"),
    [
        ("given", "mnist", "given"),  # --data-dir wins
        (None, "mnist", "mnist"),  # the run's own folder, which still holds MNIST/raw
        (None, "empty", "default"),  # recorded, but MNIST is no longer there
        (None, 42, "default"),  # not a folder name
        (None, None, "default"),  # no run folder at all
    ],
)
def test_data_dir_of_run(
    given: str | None, recorded: object, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mnist" / "MNIST" / "raw").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("MNIST_IGNITE_DATA", str(tmp_path / "default"))
    folders = {name: str(tmp_path / name) for name in ("mnist", "empty", "default")}
    run = _run(tmp_path / "run", folders.get(str(recorded), recorded)) if recorded is not None else None
    assert data_dir_of_run(given, run) == folders.get(expected, expected)


def test_a_folder_that_is_not_a_run_gives_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config.json that is not a run's (no model, epochs, ...) is not read for its data_dir."""
    (tmp_path / "mnist" / "MNIST" / "raw").mkdir(parents=True)
    monkeypatch.setenv("MNIST_IGNITE_DATA", "/the/default")
    save_json(tmp_path / "config.json", {"data_dir": str(tmp_path / "mnist")})
    assert data_dir_of_run(None, tmp_path) == "/the/default"
    assert data_dir_of_run(None, tmp_path / "missing") == "/the/default"


@pytest.mark.parametrize(
    ("given", "recorded", "expected"),
    [
        ("fp16", "bf16", "fp16"),  # --precision wins
        (None, "bf16", "bf16"),  # the run's own: evaluate's numbers then match its last epoch's
        (None, "auto", "auto"),  # resolved on the device at hand, as the run resolved it
        (None, "fp8", "fp32"),  # not a precision this tool knows
        (None, None, "fp32"),  # no run folder
    ],
)
def test_precision_of_run(given: str | None, recorded: str | None, expected: str, tmp_path: Path) -> None:
    run = None
    if recorded is not None:
        save_json(tmp_path / "config.json", Config().to_dict() | {"precision": recorded})
        run = tmp_path
    assert precision_of_run(given, run) == expected
    parser = command_parser("thing", "does a thing")
    add_precision_arg(parser)
    assert parser.parse_args([]).precision is None and parser.parse_args(["--precision", "bf16"]).precision == "bf16"
