"""What the commands share: the program name, one-line errors, ``--data-dir``/``--device``.

Light on purpose (no torch): every command's ``--help`` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import sys

from mnist_ignite.config import default_data_dir

__all__ = ["PROG", "add_data_args", "error"]

PROG = "mnist-ignite"


def error(message: str, code: int = 1) -> int:
    """Print the one-line error and return ``code`` (1: the run failed, 2: usage)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--device``, as in training."""
    parser.add_argument("--data-dir", default=default_data_dir(), help="MNIST folder (torchvision layout)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
