"""The seed's helper names (``utils.get_*``, ``utils.plot_*``), re-exported from where they live."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets

from mnist_ignite.config.settings import default_data_dir
from mnist_ignite.core.data import get_test_transforms, get_train_transforms, load_mnist
from mnist_ignite.reporting.figures import plot_model_results, plot_train_data

__all__ = [
    "get_test_transforms",
    "get_train_and_test_mnist_data",
    "get_train_and_test_mnist_dataloader",
    "get_train_transforms",
    "plot_model_results",
    "plot_train_data",
]


def get_train_and_test_mnist_data(data_dir: str | None = None) -> tuple[datasets.MNIST, datasets.MNIST]:
    """MNIST train/test datasets with the seed's transforms (downloaded when absent)."""
    root = data_dir or default_data_dir()
    return (
        load_mnist(root, train=True, transform=get_train_transforms()),
        load_mnist(root, train=False, transform=get_test_transforms()),
    )


def get_train_and_test_mnist_dataloader(
    batch_size: int = 64,
    data_dir: str | None = None,
    num_workers: int = 2,
    max_train_samples: int | None = None,
    max_test_samples: int | None = None,
) -> tuple[DataLoader, DataLoader]:
    """The seed's loaders: shuffled, ``num_workers`` workers, pinned memory when CUDA is there.

    ``max_train_samples`` / ``max_test_samples`` keep the first N images of a split (the CLI's
    ``--max-train-samples`` / ``--max-eval-samples``): a quick try, or a test, on a subset.
    """
    train_data, test_data = get_train_and_test_mnist_data(data_dir)
    kwargs = {"batch_size": batch_size, "num_workers": num_workers, "pin_memory": torch.cuda.is_available()}
    return (
        DataLoader(_first(train_data, max_train_samples), shuffle=True, **kwargs),
        DataLoader(_first(test_data, max_test_samples), shuffle=False, **kwargs),
    )


def _first(data: Dataset, n: int | None) -> Dataset:
    return data if n is None or n >= len(data) else Subset(data, range(n))
