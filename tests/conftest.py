"""Shared fixtures: the real MNIST from ``$MNIST_IGNITE_DATA`` (or ./data; never downloaded), small CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("MNIST_IGNITE_DATA") or ROOT / "data")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def pytest_configure(config: pytest.Config) -> None:
    """No MNIST, no suite: one line that says where to point it, before any test runs (exit 4)."""
    raw = DATA_DIR / "MNIST" / "raw"
    absent = [name for name in MNIST_FILES if not (raw / name).is_file()]
    if absent:
        raise pytest.UsageError(
            f"the tests need MNIST ({absent[0]} is not in {raw}): export MNIST_IGNITE_DATA=DIR, a folder holding "
            "MNIST/raw/*-ubyte; or download it into ./data once with: "
            ".venv/bin/python -c \"from torchvision.datasets import MNIST; MNIST('data', download=True)\""
        )


@pytest.fixture(scope="session")
def data_dir() -> str:
    return str(DATA_DIR)


def small_args(data_dir: str, out: Path, *extra: str, train: int = 512, eval_: int = 256) -> list[str]:
    """Arguments of a quick CPU run on subsets, with the default handlers on (as users run it)."""
    return [
        "--data-dir",
        data_dir,
        "--output-dir",
        str(out),
        "--device",
        "cpu",
        "--max-train-samples",
        str(train),
        "--max-eval-samples",
        str(eval_),
        "--no-download",
        *extra,
    ]


def run_cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    """``mnist-ignite`` in a fresh process (for exit codes, signals and tracebacks)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_mnist.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def metrics(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "metrics.json").read_text())
