"""Plugins' ``state_dict()`` in checkpoints, checked at save time."""

from __future__ import annotations

import sys
from typing import Any

from mnist_ignite.errors import PluginError

__all__ = ["PluginStates"]


def _unsafe_path(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds something ``torch.load(weights_only=True)`` would refuse (None when all is fine)."""
    import torch

    if isinstance(value, (torch.Tensor, int, float, bool, str, bytes, type(None))):
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                return f"{path}[{k!r}] (key of type {type(k).__name__})"
            found = _unsafe_path(v, f"{path}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _unsafe_path(v, f"{path}[{i}]")
            if found:
                return found
        return None
    return f"{path or 'the state'} (a {type(value).__module__}.{type(value).__qualname__})"


class PluginStates:
    """Every stateful plugin's ``state_dict()``, keyed by plugin name: one entry of the checkpoint.

    Built by the core over the live list of attached plugins, so a checkpoint restored at
    ``RunEvents.READY`` gives each plugin its state whatever order they attached in. A state that
    a weights-only load would refuse fails here, at saving time, naming the plugin.
    """

    def __init__(self, plugins: list[Any]) -> None:
        self.plugins = plugins

    def _stateful(self) -> dict[str, Any]:
        return {p.name: p for p in self.plugins if callable(getattr(p, "state_dict", None))}

    def state_dict(self) -> dict[str, Any]:
        states = {}
        for name, plugin in self._stateful().items():
            state = plugin.state_dict()
            bad = _unsafe_path(state)
            if bad:
                raise PluginError(
                    name,
                    "state_dict",
                    TypeError(f"{bad} cannot go in a checkpoint: use tensors, numbers, strings, lists and dicts"),
                )
            states[name] = state
        return states

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stateful = self._stateful()
        for name, plugin_state in state.items():
            if name in stateful:
                stateful[name].load_state_dict(plugin_state)
            else:
                print(
                    f"mnist-ignite: warning: the checkpoint holds state of handler {name!r}, "
                    "which is not enabled: ignored",
                    file=sys.stderr,
                    flush=True,
                )
