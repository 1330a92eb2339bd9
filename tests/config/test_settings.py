from __future__ import annotations

from pathlib import Path

import pytest

from mnist_ignite.cli import main
from mnist_ignite.config.argv import parse_config
from mnist_ignite.config.settings import DEFAULT_HANDLERS, Config, flat_settings, settings
from mnist_ignite.config.toml import read_toml
from mnist_ignite.errors import ConfigError


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
    assert "unknown setting epohcs" in capsys.readouterr().err


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(write(tmp_path, "epochs = = 3"))


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


def test_a_config_that_is_a_directory_or_not_utf8_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    path = tmp_path / "latin1.toml"
    path.write_bytes("# caf\xe9\nepochs = 2\n".encode("latin-1"))
    assert main(["--config", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_every_setting_is_declared_once_and_drives_the_flags() -> None:
    from mnist_ignite.config.argv import build_parser

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


def test_flat_settings_put_handler_options_beside_core_settings() -> None:
    config = Config(epochs=3, handlers=["visdom"], model_args={"width": 8, "act": {"kind": "relu"}})
    config.options["visdom_env"] = "mine"
    flat = flat_settings(config.to_dict())
    assert flat["epochs"] == 3 and flat["visdom_env"] == "mine" and "options" not in flat
    assert flat["handlers"] == "visdom" and flat["model_args.width"] == 8 and flat["model_args.act.kind"] == "relu"
    assert flat["max_train_samples"] is None  # kept as it is: each reader decides how to show it
