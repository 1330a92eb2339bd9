"""The command line of a run: flags and the TOML file, parsed and checked as the Config declarations say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mnist_ignite.cli import main
from mnist_ignite.config.argv import build_parser, check_option, parse_config, parse_model_arg
from mnist_ignite.config.settings import settings
from mnist_ignite.errors import ConfigError
from mnist_ignite.plugins.api import Option


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def test_toml_sets_options_and_handlers_and_flags_override(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'epochs = 3\nbatch-size = 128\nhandlers = ["early_stopping"]\n'
        'no_handlers = ["plots"]\n[early_stopping]\npatience = 5\n',
    )
    c = parse_config(["--config", path, "--epochs", "4"])
    assert c.epochs == 4 and c.batch_size == 128
    assert "early_stopping" in c.handlers and "plots" not in c.handlers
    assert c.options["patience"] == 5
    assert parse_config(["--config", path, "--patience", "9"]).options["patience"] == 9


def test_the_printed_resume_command_works_when_the_toml_says_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--resume auto`` on the command line beats ``overwrite = true`` from the file (and the other way round)."""
    path = write(tmp_path, 'overwrite = true\noutput_dir = "runs/x"\n')
    c = parse_config(["--config", path, "--resume", "auto"])
    assert c.resume == "auto" and not c.overwrite
    assert (
        f"{path}: overwrite = true left out: --resume on the command line continues the run" in capsys.readouterr().out
    )
    assert parse_config(["--config", path]).overwrite  # the file's own setting, when nothing contradicts it
    both = write(tmp_path, 'resume = "auto"\n')
    c = parse_config(["--config", both, "--overwrite"])
    assert c.overwrite and c.resume is None
    with pytest.raises(ConfigError, match="--resume and --overwrite contradict each other"):
        from mnist_ignite.core.resolve import validate

        validate(parse_config(["--resume", "auto", "--overwrite", "--output-dir", "d"]))  # both named: refused


def test_unknown_toml_key_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "epohcs = 3\n")
    assert main(["--config", path]) == 2
    assert "unknown setting epohcs" in capsys.readouterr().err


def test_switches_enable_and_disable_handlers() -> None:
    c = parse_config(["--no-plots", "--no-progress", "--handler", "time_limit", "--no-handler", "nan_guard"])
    assert "plots" not in c.handlers and "progress" not in c.handlers and "nan_guard" not in c.handlers
    assert "time_limit" in c.handlers and c.options["time_limit"] == 3600.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs = 1.5\n", "epochs must be an integer, got 1.5"),
        ("epochs = true\n", "epochs must be an integer, got True"),
        ("lr = []\n", "lr must be a number, got []"),
        ('handlers = "visdom"\n', "handlers must be a list of handler names"),
        ("[plots]\nepochs = 3\n", "[plots] sets epochs, a core setting"),
        ("[nope]\nx = 1\n", "[nope] is not an enabled handler"),
        ("batch_size = 32\nbatch-size = 64\n", "'batch-size' is set twice"),
        ("epochs = 0\n", "--epochs must be > 0, got 0"),
        ('[lr_schedule]\ngamma = "x"\n', "[lr_schedule] gamma must be a number"),
    ],
)
def test_toml_values_are_checked_like_flags(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", write(tmp_path, text)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_every_setting_is_declared_once_and_drives_the_flags() -> None:
    flags = {s for a in build_parser()._actions for s in a.option_strings}
    for f, s in settings():
        assert (s.flag or "--" + f.name.replace("_", "-")) in flags, f.name
        assert s.help and s.group


def test_a_model_table_holds_the_spec_and_its_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, '[model]\nspec = "examples/custom_model.py:SmallNet"\nwidth = 8\ndropout = 0.1\n')
    c = parse_config(["--config", path, "--model-arg", "width=12"])
    assert c.model.endswith("custom_model.py:SmallNet") and c.model_args == {"width": 12, "dropout": 0.1}


def test_lr_auto_is_accepted_by_flag_and_toml(tmp_path: Path) -> None:
    assert parse_config(["--lr", "auto"]).lr == "auto"
    assert parse_config(["--config", write(tmp_path, 'lr = "auto"\n')]).lr == "auto"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs: must be > 0"),
        (["--lr", "-1"], "--lr: must be a finite number > 0"),
        (["--batch-size", "0"], "--batch-size: must be > 0"),
        (["--epochs", "two"], "not a valid int"),
        (["--epoch", "2"], "unknown option --epoch (did you mean --epochs?)"),  # never abbreviated
        (["--overw"], "unknown option --overw (did you mean --overwrite?)"),
    ],
)
def test_bad_values_exit_2_with_a_message(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_config(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_device_that_is_no_device_string_is_refused_before_torch_loads() -> None:
    from mnist_ignite.errors import ConfigError

    with pytest.raises(ConfigError, match="--device must be auto, cpu, or a device type with an optional index"):
        parse_config(["--device", "gpu 0"])
    assert parse_config(["--device", "xpu:1"]).device == "xpu:1"  # any type torch may report


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("width=16", ("width", 16)),
        ("dropout=0.1", ("dropout", 0.1)),
        ("bias=False", ("bias", False)),
        ("sizes=(8, 16)", ("sizes", (8, 16))),
        ("act=relu", ("act", "relu")),  # not a literal: the text itself
        ("name='a=b'", ("name", "a=b")),  # split at the first "="
        ("empty=", ("empty", "")),
    ],
)
def test_a_model_arg_is_a_python_literal_or_else_a_string(text: str, expected: tuple[str, Any]) -> None:
    assert parse_model_arg(text) == expected


@pytest.mark.parametrize("text", ["width", "=3", "1width=3", "my-width=3"])
def test_a_model_arg_needs_an_identifier_and_a_value(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--model-arg wants key=value \(e.g. --model-arg width=16\), got"):
        parse_model_arg(text)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be > 0, got {value}")
    return value


@pytest.mark.parametrize(
    ("option", "value", "result"),
    [
        (Option("patience", int), 5, 5),
        (Option("gamma", float), 1, 1.0),  # an int is a number
        (Option("patience", int), "5", "[x] patience must be an integer, got '5'"),
        (Option("patience", int), True, "[x] patience must be an integer, got True"),
        (Option("warmup", positive_int), 3, 3),  # a custom type gets the value's text, as on the command line
        (Option("warmup", positive_int), -1, "[x] patience: must be > 0, got -1"),
        (Option("warmup", positive_int), None, None),
        (Option("mode", str, choices=("min", "max")), "max", "max"),
        (Option("mode", str, choices=("min", "max")), "mid", "[x] patience must be one of min, max, got 'mid'"),
    ],
)
def test_a_handler_option_from_a_file_is_checked_as_its_flag_would_be(option: Option, value: Any, result: Any) -> None:
    where = "run.toml: [x] patience"
    if isinstance(result, str) and result.startswith("[x]"):
        with pytest.raises(ConfigError) as refused:
            check_option(option, value, where)
        assert str(refused.value) == f"run.toml: {result}"
    else:
        assert check_option(option, value, where) == result
