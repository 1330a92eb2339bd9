"""``mnist-ignite [OPTIONS]``: train (the command that runs when no other is named).

Every option comes from the ``Config`` declarations and the enabled handlers' own options
(:mod:`mnist_ignite.config.argv`); the run itself is :func:`mnist_ignite.experiments.training.train`.
``--list-handlers`` lists what ``--handler`` can enable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mnist_ignite.config.argv import parse_config
from mnist_ignite.config.settings import DEFAULT_HANDLERS

__all__ = ["HELP", "list_handlers", "main"]

HELP = "train the ERA Session 5 Net (the default command)"


def list_handlers() -> None:
    """One line per available handler: name, description, [default]."""
    from mnist_ignite.discovery.handlers import available_plugins, load_plugin_class
    from mnist_ignite.errors import PluginLoadError

    for name in sorted(available_plugins()):
        try:
            description = getattr(load_plugin_class(name), "description", "") or ""
        except PluginLoadError as err:
            description = f"(cannot load: {err})"
        default = " [default]" if name in DEFAULT_HANDLERS else ""
        print(f"{name:<16}{description}{default}")


def main(argv: list[str], plugins: Sequence[Any] = (), commands: str = "") -> int:
    """Parse ``argv`` and train; ``commands`` is the list of subcommands ``--help`` shows."""
    if "--list-handlers" in argv:
        list_handlers()
        return 0
    config = parse_config(argv, commands)
    from mnist_ignite.experiments.training import train

    train(config, plugins)
    return 0
