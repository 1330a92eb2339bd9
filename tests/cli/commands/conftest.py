"""A small trained model, once per session, for the commands that use one (evaluate, predict, export)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import run_cli

TRAIN_IMAGES = 10_000  # two epochs of these: ~97% test accuracy in ~30 s of one CPU core


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, data_dir: str) -> Path:
    """A run folder as ``mnist-ignite`` leaves it (default handlers on): config, final model, checkpoints."""
    out = tmp_path_factory.mktemp("trained") / "run"
    result = run_cli(
        "--data-dir",
        data_dir,
        "--output-dir",
        str(out),
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--max-train-samples",
        str(TRAIN_IMAGES),
        "--max-eval-samples",
        "1000",
        "--no-download",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.fixture
def run_main(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run a command in this process as ``mnist-ignite NAME ...`` does: (exit code, stdout, stderr).

    ``main`` is the command module's ``main``; the dispatcher maps errors to exit codes, argparse's exits included.
    """
    from mnist_ignite.cli import main as cli_main

    def run(main: Callable[[list[str]], int], *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            if main.__module__.startswith("mnist_ignite.cli.commands."):  # a command module's own main
                code = cli_main([main.__module__.rsplit(".", 1)[1].replace("_", "-"), *args])
            else:
                code = main(list(args))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


LOGITS_MODEL = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """A user's model: BatchNorm (eval mode matters), returns logits, takes a constructor option."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2), nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(4)
        )
        self.head = nn.Linear(16 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))
'''


@pytest.fixture(scope="session")
def custom_run(tmp_path_factory: pytest.TempPathFactory, data_dir: str) -> Path:
    """A run of a user's logits model from ``file.py:Attr`` with ``--model-arg width=6``."""
    root = tmp_path_factory.mktemp("custom")
    (root / "tiny.py").write_text(LOGITS_MODEL)
    out = root / "run"
    result = run_cli(
        *("--model", f"{root / 'tiny.py'}:Tiny", "--model-arg", "width=6"),
        *("--data-dir", data_dir, "--output-dir", str(out), "--device", "cpu", "--epochs", "1"),
        *("--max-train-samples", "2048", "--max-eval-samples", "256", "--no-download"),
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return out
