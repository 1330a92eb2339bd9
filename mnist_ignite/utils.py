"""The seed's helper names (``utils.get_*``, ``utils.plot_*``), re-exported from where they live."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from torchvision import datasets

from mnist_ignite.data import default_data_dir, get_test_transforms, get_train_transforms, load_mnist
from mnist_ignite.figures import plot_model_results, plot_train_data

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
    batch_size: int = 64, data_dir: str | None = None, num_workers: int = 2
) -> tuple[DataLoader, DataLoader]:
    """The seed's loaders: shuffled, ``num_workers`` workers, pinned memory when CUDA is there."""
    train_data, test_data = get_train_and_test_mnist_data(data_dir)
    kwargs = {"batch_size": batch_size, "num_workers": num_workers, "pin_memory": torch.cuda.is_available()}
    return DataLoader(train_data, shuffle=True, **kwargs), DataLoader(test_data, shuffle=False, **kwargs)
