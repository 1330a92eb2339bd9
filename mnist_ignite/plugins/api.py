"""The plugin contract: what a plugin is, its options, and what it sees of a run (:class:`RunContext`).

A plugin is an object with a ``name`` and ``attach(ctx)``; it hooks itself onto Ignite events of
``ctx.trainer`` / ``ctx.evaluator``. Optional parts, all duck-typed:

* ``description`` (one line for ``--list-handlers``) and ``options``: a tuple of :class:`Option`,
  shown in ``--help`` once the plugin is enabled and passed to the constructor as keywords;
* ``state_dict()`` / ``load_state_dict(state)``: the plugin's state rides inside checkpoints,
  under the plugin's name, whatever order plugins attach in. It must hold only tensors, numbers,
  strings, lists and dicts (checkpoints load with ``weights_only=True``); anything else fails at
  the first checkpoint, naming the plugin.
* ``close()``: called once by the core when the run ends, succeeded or failed. (Never listen to
  ``Events.EXCEPTION_RAISED``: a handler there makes Ignite swallow every exception.)

A plain function ``attach(ctx)`` is a plugin too (named after the function).

Plugins attach in the order they are enabled and see the run through :class:`RunContext`. At the
trainer's ``EPOCH_COMPLETED`` the evaluation has run and ``ctx.trainer.state.record`` holds the
epoch's numbers (the row of metrics.json). Two events of the core's own (:class:`RunEvents`) need
no ordering numbers: ``READY`` fires once every plugin is attached (a checkpoint is restored
there, so every plugin gets its state back), ``EPOCH_END`` after every ``EPOCH_COMPLETED``
handler (the epoch's state is complete: checkpoints are saved there).

Plugins are found by name (built-ins and the ``mnist_ignite.handlers`` entry-point group),
as ``package.module:Attr``, or as ``path/to/file.py:Attr``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mnist_ignite.errors import PluginError, PluginLoadError, StopTraining

if TYPE_CHECKING:  # torch and Ignite load when a run starts, not for --help
    import torch
    from ignite.engine import Engine

__all__ = ["Option", "Plugin", "PluginError", "PluginLoadError", "RunContext", "StopTraining"]


def _cpu() -> torch.device:
    import torch

    return torch.device("cpu")


@dataclass(frozen=True)
class Option:
    """A plugin option: becomes ``--NAME`` on the command line and ``NAME`` in the TOML file."""

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    choices: Sequence[Any] | None = None

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


@dataclass
class RunContext:
    """What a plugin sees of a run."""

    trainer: Engine
    evaluator: Engine
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    config: Any
    output_dir: Path
    is_main_process: bool = True
    device: torch.device = field(default_factory=_cpu)
    train_data: Any = None
    eval_data: Any = None
    epoch_length: int = 0
    plugins: list[Any] = field(default_factory=list)
    # the per-epoch rows (mnist_ignite.history.History): .rows, .results (the seed's dict)
    history: Any = None
    # objects other plugins want saved in checkpoints (e.g. the lr scheduler), by name
    checkpoint_objects: dict[str, Any] = field(default_factory=dict)
    # --target-acc: {"target_acc", "target_reached_epoch", "target_reached_seconds"} once reached
    target_reached: dict[str, Any] | None = None


class Plugin:
    """Convenience base: stores declared options as attributes and checks unknown keywords."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, **values: Any) -> None:
        known = {o.dest: o for o in self.options}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        for dest, opt in known.items():
            setattr(self, dest, values.get(dest, opt.default))

    def attach(self, ctx: RunContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
