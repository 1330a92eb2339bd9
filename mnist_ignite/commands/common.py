"""What the commands that use a trained model share: flags, error lines, the MNIST test images."""

from __future__ import annotations

import argparse
import sys

import torch

from mnist_ignite.data import default_data_dir, load_mnist

__all__ = ["PROG", "add_data_args", "error", "test_images"]

PROG = "mnist-ignite"


def error(message: str, code: int = 1) -> int:
    """Print the one-line error and return ``code`` (1: the run failed, 2: usage)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--device``, as in training."""
    parser.add_argument("--data-dir", default=default_data_dir(), help="MNIST folder (torchvision layout)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def test_images(data_dir: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` MNIST test images as uint8 (N, 28, 28) and their labels."""
    dataset = load_mnist(data_dir, train=False)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    return dataset.data[:n], dataset.targets[:n]
