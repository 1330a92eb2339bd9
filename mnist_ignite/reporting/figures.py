"""Matplotlib figures: the seed's two plots, the live metrics plot, image grids and a confusion matrix.

Every function returns a ``Figure`` built with the object API (no pyplot state), so it works
headless, in a notebook, and from a training thread alike. In a Jupyter kernel a returned figure
renders as an image without ``%matplotlib inline``: building one registers the inline backend's
figure formatters, which pyplot would otherwise register only when it loads the backend.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mnist_ignite.core.files import atomic_write
from mnist_ignite.log import in_notebook, ipython_shell

__all__ = [
    "confusion_matrix_figure",
    "figure_png",
    "image_grid",
    "in_notebook",
    "integer_epochs",
    "metrics_figure",
    "new_figure",
    "plot_model_results",
    "plot_train_data",
    "save_figure",
]

TRAIN_COLOR, TEST_COLOR = "tab:blue", "tab:orange"


def _enable_notebook_figures() -> None:
    """Register the inline backend's figure formats (``%matplotlib inline``'s) unless some are registered.

    Formats the user chose (``%config InlineBackend.figure_formats``, ``%matplotlib widget``) stay as they are.
    """
    if not in_notebook():
        return
    shell = ipython_shell()
    formatters = [*shell.display_formatter.formatters.values(), shell.display_formatter.ipython_display_formatter]
    for formatter in formatters:
        try:
            formatter.lookup_by_type(Figure)
            return
        except KeyError:
            continue
    from IPython.core.pylabtools import select_figure_formats

    try:
        from matplotlib_inline.config import InlineBackend
    except ImportError:  # an IPython kernel without matplotlib-inline: the inline backend's defaults
        select_figure_formats(shell, {"png"}, bbox_inches="tight")
        return
    config = InlineBackend.instance(parent=shell)
    select_figure_formats(shell, config.figure_formats, **config.print_figure_kwargs)


def new_figure(**kwargs: Any) -> Figure:
    """A pyplot-free ``Figure(**kwargs)`` that a notebook cell displays as an image."""
    _enable_notebook_figures()
    return Figure(**kwargs)


def image_grid(
    images: torch.Tensor,
    titles: Sequence[str],
    rows: int = 3,
    cols: int = 4,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """A rows x cols grid of single-channel images, gray, titled, without ticks."""
    fig = new_figure(figsize=figsize or (cols * 2.0, rows * 2.0))
    for i in range(min(rows * cols, len(images))):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(images[i].detach().float().cpu().squeeze(0).numpy(), cmap="gray")
        ax.set_title(titles[i])
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_train_data(train_loader: Iterable) -> Figure:
    """The seed's 3x4 grid of the first batch's images, titled by label."""
    images, labels = next(iter(train_loader))
    return image_grid(images[:12], [str(int(v)) for v in labels[:12]])


def plot_model_results(results: Mapping[str, Sequence[float]]) -> Figure:
    """The seed's 2x2 figure (layout, titles, size): training/test loss (top), training/test accuracy (bottom)."""
    fig = new_figure(figsize=(15, 10))
    axs = fig.subplots(2, 2)
    panels = [
        (axs[0, 0], "train_losses", "Training Loss"),
        (axs[0, 1], "test_losses", "Test Loss"),
        (axs[1, 0], "train_acc", "Training Accuracy"),
        (axs[1, 1], "test_acc", "Test Accuracy"),
    ]
    for ax, key, title in panels:
        values = list(results.get(key, []))
        ax.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        integer_epochs(ax, range(1, len(values) + 1))
    return fig


def integer_epochs(ax: Any, epochs: Sequence[int]) -> None:
    """Whole-epoch ticks on the x axis (never 1.2, 1.4); a single epoch centred in a one-epoch-wide view
    (around one point autoscaling spans a tenth of an epoch)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if len(set(epochs)) == 1:
        first = next(iter(epochs))
        ax.set_xlim(first - 0.5, first + 0.5)


def metrics_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Loss and accuracy per epoch, train and test on the same axes so they compare at a glance.

    ``rows`` are epoch records (``epoch``, ``train_loss``, ``test_loss``, ``train_acc``, ``test_acc`` in %).
    """
    epochs = [int(r["epoch"]) for r in rows]
    marker = "o" if len(epochs) <= 30 else None  # a single epoch is a point, not an invisible line
    fig = new_figure(figsize=(12, 4.5))
    loss_ax, acc_ax = fig.subplots(1, 2)
    panels = [
        (loss_ax, "loss", "loss (NLL, nats per image)", "Loss"),
        (acc_ax, "acc", "accuracy (%)", "Accuracy"),
    ]
    for ax, key, ylabel, title in panels:
        for split, color in (("train", TRAIN_COLOR), ("test", TEST_COLOR)):
            ax.plot(epochs, [r[f"{split}_{key}"] for r in rows], marker=marker, color=color, label=split)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        integer_epochs(ax, epochs)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if rows:
        best = max(rows, key=lambda r: r["test_acc"])
        last = rows[-1]
        fig.suptitle(
            f"epoch {last['epoch']}: test accuracy {last['test_acc']:.2f}%  "
            f"(best {best['test_acc']:.2f}% at epoch {best['epoch']})"
        )
    fig.tight_layout()
    return fig


def confusion_matrix_figure(matrix: torch.Tensor) -> Figure:
    """A 10x10 confusion matrix (rows: true, columns: predicted) with the counts written in the cells.

    Cells are shaded by the share of their true class, so a handful of errors still shows against
    a diagonal of a thousand; zeros are left faint, so the errors stand out.
    """
    m = matrix.detach().cpu().long()
    n = m.shape[0]
    share = m.double() / m.sum(dim=1, keepdim=True).clamp(min=1)
    fig = new_figure(figsize=(8.5, 7.5))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(share.numpy() * 100, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(im, ax=ax, label="% of the true class")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{i}  ({100 * share[i, i]:.1f}%)" for i in range(n)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (recall)")
    total = int(m.sum())
    ax.set_title(f"Confusion matrix: {total - int(m.trace()):,} errors in {total:,} test images")
    for i in range(n):
        for j in range(n):
            count = int(m[i, j])
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=10,
                fontweight="bold" if i == j else "normal",
                color="white" if share[i, j] > 0.5 else ("0.75" if count == 0 else "black"),
            )
    fig.tight_layout()
    return fig


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (what :func:`save_figure` writes, and what a notebook displays)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 80, tight: bool = False) -> Path:
    """Write a PNG atomically, so a viewer never sees half an image; ``tight`` grows the page to hold every
    artist (a legend outside the axes is never cut off)."""
    extra = {"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, **extra))
