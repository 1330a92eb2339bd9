"""Shared fixtures: the real MNIST from ../shared/data (never downloaded), small CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("MNIST_IGNITE_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> str:
    raw = DATA_DIR / "MNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").is_file(), f"tests need the real MNIST under {raw}"
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
