"""A config checked and resolved once, before anything heavy: impossible settings, the folder, the model on resume."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from mnist_ignite.config.settings import Config
from mnist_ignite.core.resolve import absolute_model_spec, resolve, resolve_output_dir, validate
from mnist_ignite.errors import ConfigError, UntrustedSpecError

TINY = "mnist_ignite.testing:TinyNet"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"nnodes": 2, "node_rank": 2}, "--node-rank must be in [0, --nnodes)"),
        ({"nproc_per_node": 4, "nnodes": 2, "batch_size": 7}, "--batch-size is the global batch"),
        ({"resume": "auto", "handlers": ["history"]}, "--resume needs the checkpoint handler"),
        ({"resume": "auto", "overwrite": True}, "--resume and --overwrite contradict each other"),
        ({"overfit_batches": 2, "pipeline": "torchvision"}, "--overfit-batches runs on --pipeline tensor"),
        ({"fast_dev_run": 1, "repeat": 2}, "--fast-dev-run is a smoke test in a temporary folder"),
        ({"repeat": 2, "seeds": "1,2"}, "--repeat and --seeds both choose the seeds"),
        ({"epochs": 0}, "--epochs must be > 0, got 0"),  # each setting's own rule, checked here too
        ({"device": "cuda"}, "--device cuda asked for, but torch sees no accelerator here"),
    ],
)
def test_impossible_settings_are_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, settings: dict, message: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(Config(**settings))
    validate(Config(device="cpu"))  # the defaults are possible


def test_the_run_folder_is_the_one_given_or_a_new_timestamped_one() -> None:
    assert resolve_output_dir(Config(output_dir="here/run")) == Path("here/run")
    new = resolve_output_dir(Config())
    assert new.parent == Path("runs") and re.fullmatch(r"\d{8}-\d{6}", new.name)
    with pytest.raises(ConfigError, match="--resume auto needs --output-dir"):
        resolve_output_dir(Config(resume="auto"))


def test_a_model_file_spec_is_made_absolute_only_when_the_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evaluate`` and ``export`` run from anywhere: a run records where its model file really is."""
    monkeypatch.chdir(tmp_path)
    Path("nets.py").write_text("")
    assert absolute_model_spec("nets.py:Small") == f"{tmp_path / 'nets.py'}:Small"
    for kept in ("missing.py:Small", TINY, "seed", "nets.py"):
        assert absolute_model_spec(kept) == kept


def test_resolve_returns_a_new_config_with_every_choice_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("nets.py").write_text("")
    config = Config(device="cpu", model="nets.py:Small")
    resolved = resolve(config)
    assert resolved is not config and config.output_dir == "" and config.model == "nets.py:Small"
    assert resolved.output_dir.startswith("runs/") and resolved.model == f"{tmp_path / 'nets.py'}:Small"
    assert dataclasses.replace(resolved, output_dir="", model=config.model) == config  # nothing else changed


def recorded_run(folder: Path, **values: object) -> Path:
    """A run folder whose config.json records ``values`` (over a real run's defaults)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(Config().to_dict() | values))
    return folder


@pytest.mark.parametrize("how", ["auto", "checkpoint"])
def test_resume_adopts_the_recorded_model_and_the_lr_the_finder_found(
    tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = recorded_run(tmp_path / "run", model=TINY, model_args={"width": 4}, lr=0.042)
    resume = "auto" if how == "auto" else str(run / "checkpoints" / "last_checkpoint_8.pt")
    config = Config(device="cpu", output_dir=str(run), resume=resume, lr="auto", trust_code=True)
    resolved = resolve(config)
    assert (resolved.model, resolved.model_args, resolved.lr) == (TINY, {"width": 4}, 0.042)
    assert f"resuming a run of model {TINY} width=4" in capsys.readouterr().out


def test_resume_keeps_what_the_command_line_says_and_trusts_no_file(tmp_path: Path) -> None:
    """A config.json that names code to import is used only with --trust-code; a given --model wins."""
    run = recorded_run(tmp_path / "run", model=TINY, lr=0.042)
    config = Config(device="cpu", output_dir=str(run), resume="auto")
    with pytest.raises(UntrustedSpecError, match=rf"config.json asks to import '{TINY}'.*--trust-code"):
        resolve(config)
    mine = resolve(dataclasses.replace(config, model="seed", model_args={"x": 1}, lr=0.1))
    assert (mine.model, mine.model_args, mine.lr) == ("seed", {"x": 1}, 0.1)
    assert resolve(dataclasses.replace(config, output_dir=str(tmp_path / "new"))).model == "seed"  # no record


def test_resume_auto_adopts_every_setting_the_user_did_not_name(tmp_path: Path) -> None:
    """``--output-dir D --resume auto`` alone continues a run; --epochs N extends it; a named flag stays."""
    from mnist_ignite.config.argv import parse_config
    from mnist_ignite.testing import run_plugin

    run = tmp_path / "run"
    run_plugin(handlers=["checkpoint"], output_dir=run, batch_size=32, lr=0.05, max_eval_samples=64, epochs=1)
    alone = resolve(parse_config(["--output-dir", str(run), "--resume", "auto", "--trust-code"]))
    assert (alone.batch_size, alone.lr, alone.max_eval_samples, alone.epochs) == (32, 0.05, 64, 1)
    assert alone.model == "mnist_ignite.testing:TinyNet"
    longer = resolve(
        parse_config(["--output-dir", str(run), "--resume", "auto", "--trust-code", "--epochs", "3", "--lr", "0.02"])
    )
    assert (longer.epochs, longer.lr, longer.batch_size) == (3, 0.02, 32)  # named: kept as given


def test_a_resume_that_differs_names_every_difference_at_once(tmp_path: Path) -> None:
    from mnist_ignite.errors import CheckpointLoadError
    from mnist_ignite.testing import run_plugin

    run = tmp_path / "run"
    run_plugin(handlers=["checkpoint"], output_dir=run, batch_size=32, epochs=1)
    with pytest.raises(CheckpointLoadError, match=r"batch-size 32 -> 64; lr 0.01 -> 0.02\)"):
        run_plugin(handlers=["checkpoint"], output_dir=run, batch_size=64, lr=0.02, epochs=2, resume="auto")


def test_more_processes_than_the_machine_has_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with pytest.raises(ConfigError, match="--nproc-per-node 3: this machine has 2 CPU cores"):
        validate(Config(device="cpu", nproc_per_node=3))
    validate(Config(device="cpu", nproc_per_node=2))


def test_resume_auto_adopts_the_handlers_options_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A cosine schedule with warmup continues with `--output-dir D --resume auto` alone, not a refusal."""
    from mnist_ignite.cli import main
    from mnist_ignite.testing import fake_mnist

    data = fake_mnist(tmp_path / "data", train=128, test=64)
    run = tmp_path / "run"
    base = ["--data-dir", str(data), "--no-download", "--device", "cpu", "--model", "mnist_ignite.testing:TinyNet"]
    schedule = ["--lr-schedule", "cosine", "--min-lr", "0.001", "--warmup-iters", "3"]
    assert main([*base, *schedule, "--epochs", "1", "--output-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["--output-dir", str(run), "--resume", "auto", "--epochs", "2", "--trust-code"]) == 0
    said = capsys.readouterr().out
    assert "lr-schedule cosine" in said and "warmup-iters 3" in said and "min-lr 0.001" in said
    config = __import__("json").loads((run / "config.json").read_text())
    assert config["options"]["lr_schedule"] == "cosine" and config["epochs"] == 2


def test_a_resume_names_the_schedules_differences_with_the_settings_in_one_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnist_ignite.cli import main
    from mnist_ignite.testing import fake_mnist

    data = fake_mnist(tmp_path / "data", train=128, test=64)
    run = tmp_path / "run"
    base = ["--data-dir", str(data), "--no-download", "--device", "cpu", "--model", "mnist_ignite.testing:TinyNet"]
    assert main([*base, "--epochs", "1", "--output-dir", str(run)]) == 0
    capsys.readouterr()
    changed = ["--momentum", "0.5", "--lr-schedule", "cosine", "--epochs", "2"]
    assert main([*base, *changed, "--output-dir", str(run), "--resume", "auto"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "momentum 0.9 -> 0.5" in err and "lr-schedule 'step' -> 'cosine'" in err  # one message, both
    assert main([*base, *changed, "--output-dir", str(run), "--resume", "auto", "--resume-force"]) == 0
    err = capsys.readouterr().err  # forced: a warning for all of it, and the new schedule starts from its beginning
    assert "resuming with changed settings: momentum 0.9 -> 0.5; lr-schedule 'step' -> 'cosine'" in err
    assert "--resume-force: the checkpoint's lr_scheduler does not fit its changed options: it starts afresh" in err
