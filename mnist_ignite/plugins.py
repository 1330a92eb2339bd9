"""The plugin contract, discovery, and the guard that names a failing plugin.

A plugin is an object with a ``name`` and ``attach(ctx)``; it hooks itself onto Ignite events of
``ctx.trainer`` / ``ctx.evaluator``. Optional parts, all duck-typed:

* ``description`` (one line for ``--list-handlers``) and ``options``: a tuple of :class:`Option`,
  shown in ``--help`` once the plugin is enabled and passed to the constructor as keywords;
* ``order``: attach order (lower first; the checkpoint plugin goes last so it saves the others);
* ``state_dict()`` / ``load_state_dict(state)``: the plugin's state rides inside checkpoints.
  It must hold only tensors, numbers, strings, lists and dicts (checkpoints load with
  ``weights_only=True``).

At the trainer's ``EPOCH_COMPLETED`` the evaluation has run and ``ctx.trainer.state.record``
holds the epoch's numbers (the row of metrics.json).

Plugins are found by name (built-ins and the ``mnist_ignite.handlers`` entry-point group),
as ``package.module:Attr``, or as ``path/to/file.py:Attr``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from ignite.engine import Engine
from ignite.engine.engine import _EngineTerminateException, _EngineTerminateSingleEpochException

__all__ = [
    "ENTRY_POINT_GROUP",
    "Option",
    "Plugin",
    "PluginError",
    "PluginLoadError",
    "RunContext",
    "StopTraining",
    "available_plugins",
    "build_plugin",
    "close_plugins",
    "guarded_attach",
    "load_plugin_class",
]

ENTRY_POINT_GROUP = "mnist_ignite.handlers"

# Built-ins, used when the project runs from a checkout without its entry points installed.
BUILTINS: dict[str, str] = {
    "lr_schedule": "mnist_ignite.handlers.lr_schedule:LRSchedulePlugin",
    "checkpoint": "mnist_ignite.handlers.checkpoint:CheckpointPlugin",
    "history": "mnist_ignite.handlers.history:HistoryPlugin",
    "progress": "mnist_ignite.handlers.progress:ProgressPlugin",
    "early_stopping": "mnist_ignite.handlers.early_stopping:EarlyStoppingPlugin",
    "nan_guard": "mnist_ignite.handlers.nan_guard:NanGuardPlugin",
    "time_limit": "mnist_ignite.handlers.time_limit:TimeLimitPlugin",
    "plots": "mnist_ignite.handlers.plots:PlotsPlugin",
    "visdom": "mnist_ignite.handlers.visdom_monitor:VisdomPlugin",
}


class PluginLoadError(ValueError):
    """A plugin could not be found, imported, or built (a usage error: exit 2)."""


class StopTraining(Exception):
    """Raised by a plugin to end the run now, with a message and an exit code (e.g. NaN loss).

    Nothing is saved after it: the last checkpoint stays the last good one.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class PluginError(RuntimeError):
    """An exception raised inside a plugin's handler, naming the plugin and the event."""

    def __init__(self, plugin: str, event: str, error: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed on {event}: {type(error).__name__}: {error}")
        self.plugin, self.event, self.error = plugin, event, error


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
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    train_data: Any = None
    eval_data: Any = None
    epoch_length: int = 0
    plugins: list[Any] = field(default_factory=list)
    # the per-epoch rows (mnist_ignite.history.History): .rows, .results (the seed's dict)
    history: Any = None
    # objects other plugins want saved in checkpoints (e.g. the lr scheduler), by name
    checkpoint_objects: dict[str, Any] = field(default_factory=dict)


class Plugin:
    """Convenience base: stores declared options as attributes and checks unknown keywords."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    order: ClassVar[int] = 50

    def __init__(self, **values: Any) -> None:
        known = {o.dest: o for o in self.options}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        for dest, opt in known.items():
            setattr(self, dest, values.get(dest, opt.default))

    def attach(self, ctx: RunContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def available_plugins() -> dict[str, str]:
    """Name -> ``module:attr`` for built-ins and installed entry points (entry points win)."""
    found = dict(BUILTINS)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def _import_file(path: Path) -> Any:
    name = f"mnist_ignite_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_plugin_class(spec: str) -> type:
    """Resolve ``NAME``, ``package.module:Attr`` or ``path/to/file.py:Attr`` to a plugin class."""
    target = available_plugins().get(spec, spec)
    if ":" not in target:
        known = ", ".join(sorted(available_plugins()))
        raise PluginLoadError(f"unknown handler {spec!r}; available: {known} (or module:Attr, file.py:Attr)")
    where, _, attr = target.rpartition(":")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise PluginLoadError(f"handler {spec!r}: file not found: {path}")
            module = _import_file(path)
        else:
            module = importlib.import_module(where)
    except PluginLoadError:
        raise
    except Exception as err:  # any import-time failure of third-party code
        raise PluginLoadError(f"handler {spec!r}: cannot import {where}: {type(err).__name__}: {err}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise PluginLoadError(f"handler {spec!r}: {where} has no attribute {attr!r}") from None
    if not inspect.isclass(obj) or not callable(getattr(obj, "attach", None)):
        raise PluginLoadError(f"handler {spec!r}: {target} is not a plugin class (a class with attach(ctx))")
    return obj


def build_plugin(spec: str, cls: type, values: dict[str, Any]) -> Any:
    """Instantiate ``cls`` with its option values; a refusal becomes a :class:`PluginLoadError`."""
    try:
        plugin = cls(**values)
    except Exception as err:
        raise PluginLoadError(f"handler {spec!r}: bad option value: {err}") from None
    if not getattr(plugin, "name", None):
        plugin.name = spec  # type: ignore[attr-defined]
    return plugin


def close_plugins(plugins: Sequence[Any]) -> None:
    """Call each plugin's optional ``close()`` once the run has ended, succeeded or failed (last attached first).

    The core does this in a ``finally`` instead of plugins listening to ``Events.EXCEPTION_RAISED``: a
    handler on that event makes Ignite swallow the exception. A failing ``close()`` warns, naming the
    plugin, and never hides the run's own error.
    """
    for plugin in reversed(list(plugins)):
        close = getattr(plugin, "close", None)
        if not callable(close):
            continue
        try:
            close()
        except Exception as err:  # cleanup must not mask the run's outcome
            print(
                f"mnist-ignite: warning: handler {plugin.name!r}: close failed: {type(err).__name__}: {err}",
                file=sys.stderr,
                flush=True,
            )


def _event_name(event: Any) -> str:
    return getattr(event, "name", str(event))


_CONTROL_FLOW = (_EngineTerminateException, _EngineTerminateSingleEpochException)


@contextmanager
def guarded_attach(name: str, *engines: Engine) -> Iterator[None]:
    """While a plugin attaches, wrap every handler it registers so a failure names it and the event."""
    originals = {id(e): e.add_event_handler for e in engines}

    def make(engine: Engine, original: Callable[..., Any]) -> Callable[..., Any]:
        role = "evaluator" if engine is not engines[0] else "trainer"

        def add_event_handler(event_name: Any, handler: Callable, *args: Any, **kwargs: Any) -> Any:
            @functools.wraps(handler)
            def guarded(*a: Any, **kw: Any) -> Any:
                try:
                    return handler(*a, **kw)
                except (PluginError, StopTraining, *_CONTROL_FLOW):
                    raise
                except Exception as err:
                    raise PluginError(name, f"{role} {_event_name(event_name)}", err) from err

            guarded._parent = lambda: handler  # type: ignore[attr-defined]  # Ignite compares handlers via _parent
            return original(event_name, guarded, *args, **kwargs)

        return add_event_handler

    for e in engines:
        e.add_event_handler = make(e, originals[id(e)])  # type: ignore[method-assign]
    try:
        yield
    finally:
        for e in engines:
            del e.add_event_handler  # back to the class method
