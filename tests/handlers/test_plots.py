from __future__ import annotations

import hashlib
from typing import Any

from ignite.engine import Events
from PIL import Image

from mnist_ignite.testing import run_plugin


class MetricsPngWatcher:
    """Records metrics.png's hash after every epoch (after the plots plugin has written it)."""

    name = "watch"

    def __init__(self) -> None:
        self.hashes: list[str] = []

    def attach(self, ctx: Any) -> None:
        plots = next(p for p in ctx.plugins if p.name == "plots")

        def record(_: Any) -> None:
            plots.flush()
            self.hashes.append(hashlib.sha256((ctx.output_dir / "plots" / "metrics.png").read_bytes()).hexdigest())

        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, record)


def test_pngs_are_written_valid_and_metrics_png_changes_each_epoch() -> None:
    watcher = MetricsPngWatcher()
    run = run_plugin(watcher, handlers=["history", "plots"], epochs=2)
    out = run.output_dir
    for name in ("metrics", "samples", "misclassified", "confusion_matrix"):
        with Image.open(out / "plots" / f"{name}.png") as image:
            image.verify()
            assert image.format == "PNG"
    with Image.open(out / "plots" / "metrics.png") as image:
        assert image.size == (1200, 450)  # (12, 4.5) inches at 100 dpi
    assert len(watcher.hashes) == 2 and watcher.hashes[0] != watcher.hashes[1]
    assert not list((out / "plots").glob(".*"))  # no temp files left behind
    assert len(run.rows) == 2


def test_a_failing_plot_warns_once_and_training_goes_on(monkeypatch: Any, capsys: Any) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("mnist_ignite.handlers.plots.atomic_write", broken)
    run = run_plugin(handlers=["plots"], epochs=2)
    err = capsys.readouterr().err
    assert err.count("mnist-ignite: warning: plots: drawing failed (OSError: disk full); training goes on") == 1
    assert "final_model.pt" in run.files
