"""The command line: ``mnist-ignite`` (``python examples/train_mnist.py``) and its subcommands.

``main`` dispatches: ``mnist-ignite [OPTIONS]`` trains, ``mnist-ignite COMMAND ...`` runs a
subcommand of ``commands/`` (one module each), and every error a user can cause becomes one line
and an exit code here.
"""

from mnist_ignite.cli.main import main

__all__ = ["main"]
