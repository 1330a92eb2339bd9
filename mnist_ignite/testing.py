"""Testing your own handler: a real, tiny run in-process, in about a second, without MNIST.

    from mnist_ignite.testing import run_plugin

    def test_my_handler_writes_its_file():
        run = run_plugin(MyHandler(every=2), epochs=2)
        assert "my_file.csv" in run.files
        assert run.calls["my_handler"]["trainer ITERATION_COMPLETED(every=2)"] == run.iterations // 2

:func:`run_plugin` trains through the same code as ``mnist-ignite`` (``launch``: settings resolved,
run folder claimed, the real engines, events, checkpoints and handlers) on a synthetic MNIST of
rendered digits (:func:`fake_mnist`, idx files like the real ones) in a temporary folder, with a
small CNN (:class:`TinyNet`) unless you pass ``model=``. It returns a :class:`PluginRun`: the
run's context, its epoch rows, the files it wrote and how often each plugin's handlers ran.
The project's own handler tests use it (``tests/handlers``).
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnist_ignite.config.settings import Config
from mnist_ignite.core.launch import Outcome, launch
from mnist_ignite.plugins.api import RunContext

__all__ = ["PluginRun", "TinyNet", "fake_mnist", "run_plugin"]

_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 uint8 images of the digits 0-9 drawn in a font, shifted and rotated a little."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=22)
    labels = rng.integers(0, 10, n)
    images = np.empty((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        image = Image.new("L", (28, 28))
        xy = (14 + int(rng.integers(-3, 4)), 14 + int(rng.integers(-3, 4)))
        ImageDraw.Draw(image).text(xy, str(int(label)), fill=255, font=font, anchor="mm")
        images[i] = np.asarray(image.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR))
    return images, labels.astype(np.uint8)


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = [magic, len(array), *array.shape[1:]]
    path.write_bytes(b"".join(v.to_bytes(4, "big") for v in header) + array.tobytes())


def fake_mnist(root: str | Path, train: int = 512, test: int = 256, seed: int = 0) -> Path:
    """Write a synthetic MNIST (idx files in ``root/MNIST/raw``, the torchvision layout) and return ``root``.

    The images are rendered digits, learnable in an epoch or two; a run reads them exactly as it
    reads the real MNIST (``--data-dir root``).
    """
    root = Path(root)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for is_train, n, offset in ((True, train, 0), (False, test, 1)):
        images, labels = _digits(n, seed * 2 + offset)
        image_file, label_file = _FILES[is_train]
        _write_idx(raw / image_file, images)
        _write_idx(raw / label_file, labels)
    return root


@functools.cache
def _shared_data(train: int, test: int) -> Path:
    """One synthetic MNIST per size for this process (rendering takes ~0.2 s per 1,000 images)."""
    return fake_mnist(tempfile.mkdtemp(prefix="mnist-ignite-fake-mnist-"), train, test)


class TinyNet(nn.Module):
    """A small CNN for tests (~6k parameters): two strided 3x3 convolutions and a linear layer (logits)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, stride=2), nn.ReLU()
        )
        self.head = nn.Linear(2 * width * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class _Capture:
    """Keeps the run's context for the test (attached after the plugins under test)."""

    name = "_capture"
    ctx: RunContext | None = None

    def attach(self, ctx: RunContext) -> None:
        self.ctx = ctx


@dataclass
class PluginRun:
    """What a test needs of a run.

    Attributes:
        ctx: the run's context (engines, model, config, history, the attached plugins).
        outcome: the run's outcome (results.json's numbers, what it wrote, whether it stopped early).
        rows: one row per finished epoch (metrics.json's rows).
        output_dir: the run folder (a temporary folder unless ``output_dir=`` was given).
        files: every file in the run folder, as paths relative to it (``plots/metrics.png``).
        calls: per plugin name, ``{"trainer ITERATION_COMPLETED(every=10)": times it ran, ...}``.
        iterations: training iterations the run made.
    """

    ctx: RunContext
    outcome: Outcome
    rows: list[dict[str, Any]]
    output_dir: Path
    files: list[str] = field(default_factory=list)
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    iterations: int = 0


def run_plugin(
    *plugins: Any,
    epochs: int = 1,
    train: int = 256,
    test: int = 128,
    handlers: Sequence[str] = (),
    model: str = "mnist_ignite.testing:TinyNet",
    output_dir: str | Path | None = None,
    **settings: Any,
) -> PluginRun:
    """Run ``plugins`` (plugin objects or ``attach(ctx)`` functions) through a tiny real run.

    Args:
        plugins: what is under test, attached after ``handlers`` in this order.
        epochs: training epochs.
        train: synthetic training images (batch 64 by default: ``train / 64`` iterations per epoch).
        test: synthetic test images.
        handlers: built-in or spec'd handlers to enable too (none by default: only yours run).
        model: a model spec (the seed's Net is ``"seed"``; the default is :class:`TinyNet`).
        output_dir: the run folder (default: a new temporary folder).
        settings: any other ``Config`` field (``batch_size=32``, ``lr=0.05``, ``options={...}``).
    """
    folder = Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(prefix="mnist-ignite-test-"))
    if output_dir is None:
        folder = folder / "run"
    capture = _Capture()
    config = Config(
        data_dir=str(_shared_data(train, test)),
        download=False,
        device="cpu",
        epochs=epochs,
        model=model,
        handlers=list(handlers),
        output_dir=str(folder),
        given=frozenset({"epochs", "model", *settings}),  # what this call names; a resume adopts the rest
        **settings,
    )
    outcome = launch(dataclasses.replace(config), [*plugins, capture])
    assert capture.ctx is not None
    ctx = capture.ctx
    calls = {c.plugin: dict(c.calls) for c in outcome.handler_calls if c.plugin != capture.name}
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return PluginRun(
        ctx=ctx,
        outcome=outcome,
        rows=outcome.rows,
        output_dir=folder,
        files=[f for f in files if not f.startswith(".mnist-ignite")],
        calls=calls,
        iterations=ctx.trainer.state.iteration,
    )
