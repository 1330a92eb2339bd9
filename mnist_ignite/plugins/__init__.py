"""The plugin contract: what a handler author writes against.

``api``: :class:`Plugin` (a convenience base), :class:`Option` (an option on the command line and
in TOML), :class:`Output` (a file it writes), :class:`RunContext` (what it sees of a run);
``events``: :class:`RunEvents` and :func:`inside_epoch`; ``guard``: how a failing plugin is named.
Plugins are found by :mod:`mnist_ignite.discovery.handlers` (built-ins, entry points, specs).
"""

from typing import Any

from mnist_ignite.discovery.handlers import available_plugins, load_plugin_class
from mnist_ignite.errors import PluginError, PluginLoadError, StopTraining
from mnist_ignite.plugins.api import Option, Output, Plugin, RunContext, on

__all__ = [
    "Option",
    "Output",
    "Plugin",
    "PluginError",
    "PluginLoadError",
    "RunContext",
    "RunEvents",
    "StopTraining",
    "available_plugins",
    "inside_epoch",
    "load_plugin_class",
    "on",
]


def __getattr__(name: str) -> Any:
    if name in ("RunEvents", "inside_epoch"):  # made of Ignite's events: Ignite loads on first use, not for --help
        from mnist_ignite.plugins import events

        return getattr(events, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
