"""Matplotlib figures: the seed's two plots plus misclassified and confusion-matrix grids.

Every function returns a ``Figure`` built with the object API (no pyplot state), so it works
headless, in a notebook, and from a training thread alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from mnist_ignite.files import atomic_write

__all__ = [
    "confusion_matrix_figure",
    "image_grid",
    "in_notebook",
    "plot_model_results",
    "plot_train_data",
    "save_figure",
]


def in_notebook() -> bool:
    """True inside a Jupyter kernel, where figures and progress bars render inline."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def image_grid(
    images: torch.Tensor,
    titles: Sequence[str],
    rows: int = 3,
    cols: int = 4,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """A rows x cols grid of single-channel images, gray, titled, without ticks."""
    fig = Figure(figsize=figsize or (cols * 2.0, rows * 2.0))
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
    """The seed's 2x2 figure: training/test loss (top), training/test accuracy (bottom)."""
    fig = Figure(figsize=(15, 10))
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
    return fig


def confusion_matrix_figure(matrix: torch.Tensor) -> Figure:
    """A 10x10 confusion matrix (rows: true, columns: predicted) with counts in the cells."""
    m = matrix.detach().cpu().long()
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m.numpy(), cmap="Blues")
    fig.colorbar(im, ax=ax)
    n = m.shape[0]
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test)")
    threshold = m.max().item() / 2
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(m[i, j].item()),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if m[i, j] > threshold else "black",
            )
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 80) -> Path:
    """Write a PNG atomically, so a viewer never sees half an image."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
