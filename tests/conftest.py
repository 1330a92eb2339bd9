"""Shared fixtures, and the two lanes of the suite.

* The unit lane, ``pytest -m "not integration"``: no MNIST and no subprocess (both are refused
  while a unit test runs, so a test cannot slip out of the lane unnoticed); runs in seconds.
* The integration lane: the real MNIST from ``$MNIST_IGNITE_DATA`` (or ./data; never downloaded),
  real processes, Chromium, PostgreSQL. A test is in it when it is marked ``integration`` or asks
  for the ``data_dir`` fixture (directly or through another fixture).

``pytest`` with no marker runs both (the README's test command, what CI runs).
"""

from __future__ import annotations

import _posixsubprocess
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("MNIST_IGNITE_DATA") or ROOT / "data")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
INTEGRATION = "integration"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{INTEGRATION}: needs MNIST, subprocesses, a browser or a database")
    # torch's first import starts a helper process: done here, before the unit lane refuses processes,
    # so a unit test file run alone behaves as it does in the whole lane
    import torch  # noqa: F401


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that ask for MNIST are integration tests; without MNIST they stop the run with one line (exit 4)."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(INTEGRATION)
    selected = [i for i in items if i.get_closest_marker(INTEGRATION)]
    markexpr = config.getoption("markexpr", "")
    if selected and "not integration" not in markexpr:
        raw = DATA_DIR / "MNIST" / "raw"
        absent = [name for name in MNIST_FILES if not (raw / name).is_file()]
        if absent:
            raise pytest.UsageError(
                f"the integration tests need MNIST ({absent[0]} is not in {raw}): export MNIST_IGNITE_DATA=DIR, "
                "a folder holding MNIST/raw/*-ubyte, or run the unit lane alone: pytest -m 'not integration'"
            )


def _refuse(*_: Any, **__: Any) -> Any:
    raise RuntimeError("a unit test started a process: mark it @pytest.mark.integration")


@pytest.fixture(autouse=True)
def _unit_lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In the unit lane: no process can start and no MNIST can be read."""
    if request.node.get_closest_marker(INTEGRATION):
        return
    monkeypatch.setattr(subprocess, "_fork_exec", _refuse)  # subprocess.Popen (bound at its import)
    monkeypatch.setattr(subprocess, "_USE_POSIX_SPAWN", False)  # ... so no posix_spawn path around it
    monkeypatch.setattr(_posixsubprocess, "fork_exec", _refuse)  # multiprocessing's spawn
    monkeypatch.setattr(os, "fork", _refuse)  # multiprocessing's fork
    monkeypatch.setenv("MNIST_IGNITE_DATA", str(tmp_path / "no-mnist-in-the-unit-lane"))


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


def bomb_png(width: int, height: int) -> bytes:
    """A real 1-bit PNG of ``width`` x ``height`` black pixels: tiny compressed, huge decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 500) for _ in range(height // 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
