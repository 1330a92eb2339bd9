"""What the commands share: their parser, and the ``--data-dir``, ``--device`` and ``--trust-code`` arguments.

Light on purpose (no torch): every command's ``--help`` and usage errors answer at once. A
command raises :mod:`mnist_ignite.errors` for what a user can get wrong; the dispatcher
(:mod:`mnist_ignite.cli.main`) turns each into one line and its exit code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_ignite.config.argv import DefaultsHelpFormatter, Parser
from mnist_ignite.config.settings import PRECISIONS, default_data_dir, is_device_name
from mnist_ignite.log import PROG

__all__ = [
    "PROG",
    "add_data_arg",
    "add_device_arg",
    "add_precision_arg",
    "add_trust_arg",
    "command_parser",
    "data_dir_of_run",
    "precision_of_run",
]


def _device(text: str) -> str:
    """``--device``'s form (auto, cpu, cuda:1, ...); whether torch has it is checked once it loads."""
    if not is_device_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: auto, cpu, or a type with an index (cuda:1)")
    return text


def command_parser(name: str, description: str, epilog: str | None = None) -> Parser:
    """The parser of ``mnist-ignite NAME``: one-line errors with a hint, defaults in --help, no abbreviations."""
    return Parser(prog=f"{PROG} {name}", description=description, epilog=epilog, formatter_class=DefaultsHelpFormatter)


def add_data_arg(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``: by default the folder the run was trained on (its config.json), else the usual default."""
    parser.add_argument(
        "--data-dir",
        help="MNIST folder holding MNIST/raw (default: the run's own, from its config.json; "
        "else $MNIST_IGNITE_DATA or ./data)",
    )


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    """``--device``, as in training."""
    parser.add_argument(
        "--device",
        default="auto",
        type=_device,
        help="auto = the accelerator torch reports, else cpu; or cpu, cuda, cuda:1, mps, xpu",
    )


def add_trust_arg(parser: argparse.ArgumentParser) -> None:
    """``--trust-code``: let the run's files name the model code to import (see ``models.registry.require_trusted``)."""
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="rebuild a model whose run names code to import (module:Attr, file.py:Attr); only for runs you trust",
    )


def _recorded(run_dir: Path | None, key: str) -> object:
    """``key`` of the run's config.json (None without a run, or when the folder holds no run's settings)."""
    if run_dir is None:
        return None
    from mnist_ignite.core.rundir import read_run_config

    return (read_run_config(run_dir) or {}).get(key)


def data_dir_of_run(given: str | None, run_dir: Path | None) -> str:
    """``--data-dir`` when given, else the run's own data folder (when it still holds MNIST), else the default."""
    if given:
        return given
    recorded = _recorded(run_dir, "data_dir")
    if isinstance(recorded, str) and (Path(recorded) / "MNIST" / "raw").is_dir():
        return recorded
    return default_data_dir()


def add_precision_arg(parser: argparse.ArgumentParser) -> None:
    """``--precision``: by default the one the run trained (and evaluated) in, so the numbers match its own."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="autocast dtype (default: the run's own, from its config.json; else fp32)",
    )


def precision_of_run(given: str | None, run_dir: Path | None) -> str:
    """``--precision`` when given, else the run's recorded one, else fp32."""
    recorded = _recorded(run_dir, "precision")
    return given or (str(recorded) if recorded in PRECISIONS else "fp32")
