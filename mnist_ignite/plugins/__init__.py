"""The plugin contract and how plugins are found, attached and kept in checkpoints.

``api`` is the contract a plugin author writes against (:class:`Plugin`, :class:`Option`,
:class:`RunContext`, :class:`RunEvents`); ``loading`` finds plugins by name, entry point or
spec; ``guard`` names the plugin whose handler failed; ``states`` puts plugins' state in checkpoints.
"""

from typing import Any

from mnist_ignite.errors import PluginError, PluginLoadError, StopTraining
from mnist_ignite.plugins.api import Option, Output, Plugin, RunContext
from mnist_ignite.plugins.guard import attach_plugin, close_plugins
from mnist_ignite.plugins.loading import (
    BUILTINS,
    ENTRY_POINT_GROUP,
    as_plugin,
    available_plugins,
    build_plugin,
    build_plugins,
    check_handler_name,
    load_plugin_class,
)

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "Option",
    "Output",
    "Plugin",
    "PluginError",
    "PluginLoadError",
    "RunContext",
    "RunEvents",
    "StopTraining",
    "as_plugin",
    "attach_plugin",
    "available_plugins",
    "build_plugin",
    "build_plugins",
    "check_handler_name",
    "close_plugins",
    "inside_epoch",
    "load_plugin_class",
]


def __getattr__(name: str) -> Any:
    if name in ("RunEvents", "inside_epoch"):  # made of Ignite's events: Ignite loads on first use, not for --help
        from mnist_ignite.plugins import events

        return getattr(events, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
