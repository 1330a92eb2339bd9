"""What the commands share: the program name, one-line errors, ``--data-dir``/``--device``.

Light on purpose (no torch): every command's ``--help`` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import sys

from mnist_ignite.config.argv import DefaultsHelpFormatter, Parser
from mnist_ignite.config.settings import default_data_dir
from mnist_ignite.log import PROG

__all__ = ["PROG", "add_data_args", "command_parser", "error"]


def error(message: str, code: int = 1) -> int:
    """Print the one-line error and return ``code`` (1: the run failed, 2: usage)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--device``, as in training."""
    parser.add_argument("--data-dir", default=default_data_dir(), help="MNIST folder (torchvision layout)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def command_parser(name: str, description: str, epilog: str | None = None) -> Parser:
    """The parser of ``mnist-ignite NAME``: one-line errors with a "did you mean", defaults in --help."""
    return Parser(prog=f"{PROG} {name}", description=description, epilog=epilog, formatter_class=DefaultsHelpFormatter)
