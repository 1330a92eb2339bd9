"""Subcommands: ``mnist-ignite NAME ...``, one module each, each a thin face over core functions.

A command module defines ``main(argv: list[str]) -> int`` (its own argparse, its exit code) and a
one-line ``HELP``. ``COMMANDS`` maps the name to the module path, imported only when that command
runs, so ``mnist-ignite --help`` stays fast; a command module imports torch, Ignite and matplotlib
only after its own arguments are parsed, so ``mnist-ignite NAME --help`` and usage errors are fast
too (``tests/test_cli.py`` checks it). A handler may also bring a command of its own (as
``visdom`` does): ``mnist_ignite.cli`` looks there second.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["COMMANDS", "load_command"]

# name -> (module, one line for --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "evaluate": ("mnist_ignite.cli.commands.evaluate", "loss, accuracy, per-class metrics, confusions, top losses"),
    "predict": (
        "mnist_ignite.cli.commands.predict",
        "classify digit images (PNG/JPEG, any size) with a model or .onnx",
    ),
    "export": ("mnist_ignite.cli.commands.export", "export to ONNX, TorchScript or ExportedProgram, parity-checked"),
    "compare": ("mnist_ignite.cli.commands.compare", "overlay runs' curves, tabulate results and differing settings"),
    "summary": ("mnist_ignite.cli.commands.summary", "a model's layers: shapes, parameters, FLOPs, receptive fields"),
    "lr-find": ("mnist_ignite.cli.commands.lr_find", "learning-rate range test (FastaiLRFinder): suggested lr, plot"),
    "serve": ("mnist_ignite.cli.commands.serve", "a draw-a-digit page and a prediction API for a model, offline"),
    "sweep": ("mnist_ignite.cli.commands.sweep", "Optuna search over a TOML space: pruning, workers, shared storage"),
    "visdom": (
        "mnist_ignite.cli.commands.visdom",
        "a local Visdom server for the live dashboard; replay a visdom.log",
    ),
}


def load_command(name: str) -> Callable[[list[str]], int]:
    """The ``main`` function of command ``name``."""
    module, _ = COMMANDS[name]
    return importlib.import_module(module).main
