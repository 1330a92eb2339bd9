"""The figures: what each panel plots and how it reads, image grids, PNG bytes written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from mnist_ignite.reporting.figures import (
    confusion_matrix_figure,
    figure_png,
    image_grid,
    in_notebook,
    metrics_figure,
    new_figure,
    plot_model_results,
    plot_train_data,
    save_figure,
)


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        {"epoch": e, "train_loss": 1.0 / e, "test_loss": 0.8 / e, "train_acc": 80.0 + e, "test_acc": 85.0 + e}
        for e in range(1, n + 1)
    ]


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


def test_metrics_figure_centres_a_single_epoch_and_drops_markers_on_long_runs() -> None:
    """Around one point autoscaling would span a tenth of an epoch; past 30 epochs markers only clutter."""
    single = metrics_figure(_rows(1)).axes[0]
    assert single.get_xlim() == (0.5, 1.5)
    long = metrics_figure(_rows(31)).axes[0]
    assert all(line.get_marker() in (None, "None", "") for line in long.lines)


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


@pytest.mark.parametrize(("n", "rows", "cols", "shown"), [(12, 3, 4, 12), (5, 3, 4, 5), (20, 2, 3, 6)])
def test_image_grid_shows_what_fits_gray_and_titled(n: int, rows: int, cols: int, shown: int) -> None:
    images = torch.rand(n, 1, 28, 28)
    fig = image_grid(images, [f"#{i}" for i in range(n)], rows=rows, cols=cols)
    assert len(fig.axes) == shown and tuple(fig.get_size_inches()) == (cols * 2.0, rows * 2.0)
    for i, ax in enumerate(fig.axes):
        (picture,) = ax.get_images()
        assert ax.get_title() == f"#{i}" and picture.get_cmap().name == "gray"
        assert (picture.get_array() == images[i, 0].numpy()).all()
        assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []


def test_plot_train_data_titles_the_first_twelve_of_a_batch_by_label() -> None:
    batch = (torch.rand(16, 1, 28, 28), torch.arange(16) % 10)
    fig = plot_train_data([batch])
    assert [ax.get_title() for ax in fig.axes] == [str(i % 10) for i in range(12)]


def test_png_bytes_and_an_atomic_save(tmp_path: Path) -> None:
    """The PNG is the figure's size at the dpi; a figure that fails to draw leaves the previous file as it was."""
    fig = new_figure(figsize=(4, 3))
    fig.add_subplot().plot([1, 2], [3, 4])
    with Image.open(io.BytesIO(figure_png(fig, dpi=50))) as image:
        assert image.format == "PNG" and image.size == (200, 150)
    path = save_figure(fig, tmp_path / "plots" / "f.png", dpi=50)
    assert path == tmp_path / "plots" / "f.png" and path.read_bytes() == figure_png(fig, dpi=50)
    broken = new_figure()
    broken.text(0.5, 0.5, r"$\notacommand$")  # mathtext fails when the figure is drawn
    with pytest.raises(ValueError):
        save_figure(broken, path)
    assert path.read_bytes() == figure_png(fig, dpi=50) and [p.name for p in path.parent.iterdir()] == ["f.png"]


def test_a_half_imported_ipython_is_no_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread importing IPython (mlflow's worker) leaves it in sys.modules without get_ipython for a while."""
    import sys
    import types

    from mnist_ignite.reporting.figures import in_notebook

    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    assert in_notebook() is False


def _visible_xticks(ax: Any) -> list[float]:
    low, high = ax.get_xlim()
    return [t for t in ax.get_xticks() if low <= t <= high]


@pytest.mark.parametrize("epochs", [1, 2, 3, 7])
def test_every_epoch_axis_ticks_whole_epochs(epochs: int) -> None:
    """The seed's 2x2 figure and the live metrics figure: 1, 2, 3, never 1.2, 1.4 or 2.5."""
    values = [float(e) for e in range(epochs)]
    seed = plot_model_results({k: values for k in ("train_losses", "test_losses", "train_acc", "test_acc")})
    for fig in (seed, metrics_figure(_rows(epochs))):
        FigureCanvasAgg(fig).draw()
        for ax in fig.axes:
            ticks = _visible_xticks(ax)
            assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)
