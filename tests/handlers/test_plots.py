from __future__ import annotations

import hashlib
from typing import Any

import pytest
import torch
from ignite.engine import Events
from matplotlib.figure import Figure
from PIL import Image

from mnist_ignite.reporting.figures import confusion_matrix_figure, in_notebook, metrics_figure
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


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        {"epoch": e, "train_loss": 1.0 / e, "test_loss": 0.8 / e, "train_acc": 80.0 + e, "test_acc": 85.0 + e}
        for e in range(1, n + 1)
    ]


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


@pytest.mark.parametrize("epochs", [1, 3, 25])
def test_metrics_figure_compares_train_and_test_on_labelled_axes(epochs: int) -> None:
    fig = metrics_figure(_rows(epochs))
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss (NLL, nats per image)" and acc_ax.get_ylabel() == "accuracy (%)"
    for ax, key in ((loss_ax, "loss"), (acc_ax, "acc")):
        assert ax.get_xlabel() == "epoch"
        assert [line.get_label() for line in ax.lines] == ["train", "test"]  # one panel, both splits
        assert list(ax.lines[1].get_ydata()) == [r[f"test_{key}"] for r in _rows(epochs)]
        assert all(line.get_marker() == "o" for line in ax.lines)  # a single epoch is a visible point
        fig.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks  # no epoch 1.25
    assert f"best {85.0 + epochs:.2f}% at epoch {epochs}" in fig._suptitle.get_text()


def test_confusion_matrix_writes_every_count_readably() -> None:
    matrix = torch.zeros(10, 10, dtype=torch.long)
    matrix.fill_diagonal_(980)
    matrix[4, 9], matrix[7, 2] = 12, 3
    fig = confusion_matrix_figure(matrix)
    ax = fig.axes[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert len(texts) == 100
    assert texts[(4, 9)].get_text() == "12" and texts[(7, 2)].get_text() == "3" and texts[(0, 0)].get_text() == "980"
    assert min(t.get_fontsize() for t in ax.texts) >= 10
    # an error in a pale cell is dark text, a zero is faint, the diagonal's count is white on dark
    assert texts[(4, 9)].get_color() == "black" and texts[(0, 1)].get_color() == "0.75"
    assert texts[(0, 0)].get_color() == "white"
    assert "15 errors in 9,815 test images" in ax.get_title()


def test_figures_outside_a_notebook_are_plain_figures() -> None:
    assert not in_notebook()  # pytest is not a Jupyter kernel
    assert isinstance(metrics_figure(_rows(2)), Figure)
