"""mnist-ignite: the ERA Session 5 MNIST classifier trained by PyTorch Ignite engines, with plugins.

The public API (each name loads its module on first use, so ``import mnist_ignite`` stays light)::

    from mnist_ignite import Config, train                  # train(Config(epochs=2)) -> per-epoch rows
    from mnist_ignite import Model                          # the seed notebook's API
    from mnist_ignite import Plugin, Option, Output, RunContext, RunEvents   # writing a handler

The layers, top to bottom: ``cli`` (and the seed's ``model``, ``utils``), ``notebook``, ``testing``;
``experiments``, ``artifacts``; ``reporting``; ``core``; ``models``; ``plugins``; ``config``;
``discovery``; ``errors``, ``log``. Built-in handlers are ``mnist_ignite.handlers``. See
docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Config": "mnist_ignite.config.settings",
    "train": "mnist_ignite.experiments.training",
    "Model": "mnist_ignite.notebook",
    "Plugin": "mnist_ignite.plugins.api",
    "Option": "mnist_ignite.plugins.api",
    "Output": "mnist_ignite.plugins.api",
    "RunContext": "mnist_ignite.plugins.api",
    "RunEvents": "mnist_ignite.plugins.events",
}
__all__ = ["Config", "Model", "Option", "Output", "Plugin", "RunContext", "RunEvents", "__version__", "train"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:  # on first use: torch and Ignite load only for the names that need them
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
