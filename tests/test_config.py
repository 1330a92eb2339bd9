from __future__ import annotations

from pathlib import Path

import pytest

from mnist_ignite.cli import main, parse_config
from mnist_ignite.config import DEFAULT_HANDLERS, ConfigError, read_toml


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def test_defaults_are_the_seed_recipe() -> None:
    c = parse_config([])
    assert (c.epochs, c.batch_size, c.lr, c.momentum) == (20, 64, 0.01, 0.9)
    assert c.options["lr_schedule"] == "step" and c.options["step_size"] == 15 and c.options["gamma"] == 0.1
    assert c.handlers == list(DEFAULT_HANDLERS)


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


def test_unknown_toml_key_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "epohcs = 3\n")
    assert main(["--config", path]) == 2
    assert "unknown setting(s) epohcs" in capsys.readouterr().err


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(write(tmp_path, "epochs = = 3"))


def test_switches_enable_and_disable_handlers() -> None:
    c = parse_config(["--no-plots", "--no-progress", "--handler", "time_limit", "--no-handler", "nan_guard"])
    assert "plots" not in c.handlers and "progress" not in c.handlers and "nan_guard" not in c.handlers
    assert "time_limit" in c.handlers and c.options["time_limit"] == 3600.0
