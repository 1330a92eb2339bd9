from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ignite.engine import Events
from PIL import Image

from mnist_ignite.cli import main

from conftest import small_args


class MetricsPngWatcher:
    """Records metrics.png's hash after every epoch (after the plots plugin has written it)."""

    name = "watch"
    order = 99

    def __init__(self) -> None:
        self.hashes: list[str] = []

    def attach(self, ctx: Any) -> None:
        plots = next(p for p in ctx.plugins if p.name == "plots")

        def record(_: Any) -> None:
            plots.flush()
            self.hashes.append(hashlib.sha256((ctx.output_dir / "plots" / "metrics.png").read_bytes()).hexdigest())

        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, record)


def test_pngs_are_written_valid_and_metrics_png_changes_each_epoch(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    watcher = MetricsPngWatcher()
    args = [a for a in small_args(data_dir, out, "--epochs", "2", train=256, eval_=256) if a != "--no-plots"]
    assert main(args, plugins=[watcher]) == 0
    for name in ("metrics", "samples", "misclassified", "confusion_matrix"):
        with Image.open(out / "plots" / f"{name}.png") as image:
            image.verify()
            assert image.format == "PNG"
    with Image.open(out / "plots" / "metrics.png") as image:
        assert image.size == (1200, 800)  # the seed's (15, 10) figure at 80 dpi
    assert len(watcher.hashes) == 2 and watcher.hashes[0] != watcher.hashes[1]
    assert not list((out / "plots").glob(".*"))  # no temp files left behind


def test_a_failing_plot_warns_once_and_training_goes_on(
    data_dir: str, tmp_path: Path, monkeypatch: Any, recwarn: Any
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("mnist_ignite.handlers.plots.save_figure", broken)
    out = tmp_path / "run"
    args = [a for a in small_args(data_dir, out, "--epochs", "2", train=128, eval_=128) if a != "--no-plots"]
    assert main(args) == 0
    assert len([w for w in recwarn if "plots: OSError: disk full" in str(w.message)]) == 1
    assert (out / "final_model.pt").is_file()
