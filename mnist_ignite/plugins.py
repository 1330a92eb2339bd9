"""The plugin contract, discovery, and the guard that names a failing plugin.

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

import functools
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mnist_ignite.discovery import SpecError, check_name, registered, resolve
from mnist_ignite.files import CheckpointLoadError

if TYPE_CHECKING:  # torch and Ignite load when a run starts, not for --help
    import torch
    from ignite.engine import Engine

__all__ = [
    "ENTRY_POINT_GROUP",
    "Option",
    "Plugin",
    "PluginError",
    "PluginLoadError",
    "PluginStates",
    "RunContext",
    "StopTraining",
    "as_plugin",
    "attach_plugin",
    "available_plugins",
    "build_plugin",
    "check_handler_name",
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
    "tensorboard": "mnist_ignite.handlers.tensorboard:TensorBoardPlugin",
    "mlflow": "mnist_ignite.handlers.mlflow:MLflowPlugin",
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
    """An exception raised inside a plugin (its ``attach`` or a handler), naming the plugin and where."""

    def __init__(self, plugin: str, event: str, error: BaseException) -> None:
        super().__init__(f"handler {plugin!r} failed in {event}: {type(error).__name__}: {error}")
        self.plugin, self.event, self.error = plugin, event, error


def __getattr__(name: str) -> Any:
    if name == "RunEvents":  # defined with Ignite's EventEnum: imported on first use
        from mnist_ignite.events import RunEvents

        return RunEvents
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def available_plugins() -> dict[str, str]:
    """Name -> ``module:attr`` for built-ins and installed entry points (entry points win)."""
    return registered(BUILTINS, ENTRY_POINT_GROUP)


def check_handler_name(spec: str) -> None:
    """Refuse a handler name that is neither known nor a ``module:Attr`` / ``file.py:Attr`` spec."""
    try:
        check_name(spec, available_plugins(), "handler")
    except SpecError as err:
        raise PluginLoadError(str(err)) from None


def load_plugin_class(spec: str) -> type:
    """Resolve ``NAME``, ``package.module:Attr`` or ``path/to/file.py:Attr`` to a plugin class."""
    try:
        obj = resolve(spec, available_plugins(), "handler")
    except SpecError as err:
        raise PluginLoadError(str(err)) from None
    if inspect.isfunction(obj):
        return _function_plugin(obj)
    if not inspect.isclass(obj) or not callable(getattr(obj, "attach", None)):
        target = available_plugins().get(spec, spec)
        raise PluginLoadError(
            f"handler {spec!r}: {target} is not a plugin (a class with attach(ctx), or a function attach(ctx))"
        )
    return obj


def _function_plugin(func: Callable[[RunContext], None]) -> type:
    """A plugin class around a plain ``attach(ctx)`` function (Ignite takes any callable as a handler)."""
    doc = (func.__doc__ or "").strip().splitlines()
    return type(
        func.__name__,
        (),
        {"name": func.__name__, "description": doc[0] if doc else "", "attach": staticmethod(func)},
    )


def as_plugin(obj: Any) -> Any:
    """A ready plugin object as it is, or a plain ``attach(ctx)`` function made into one."""
    if callable(getattr(obj, "attach", None)):
        return obj
    if inspect.isfunction(obj):
        return _function_plugin(obj)()
    raise PluginLoadError(f"{obj!r} is not a plugin (an object with attach(ctx), or a function attach(ctx))")


def build_plugin(spec: str, cls: type, values: dict[str, Any]) -> Any:
    """Instantiate ``cls`` with its options; a refusal (bad value, missing package) is a :class:`PluginLoadError`."""
    try:
        plugin = cls(**values)
    except Exception as err:
        raise PluginLoadError(f"handler {spec!r}: {err}") from None
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


def _pass_through() -> tuple[type[BaseException], ...]:
    """Errors that already say what went wrong in the user's terms, and Ignite's own control flow."""
    # private names: Ignite raises these to unwind terminate()/terminate_epoch(); they must not be wrapped
    from ignite.engine.engine import _EngineTerminateException, _EngineTerminateSingleEpochException

    return (
        PluginError,
        StopTraining,
        CheckpointLoadError,
        PluginLoadError,
        _EngineTerminateException,
        _EngineTerminateSingleEpochException,
    )


def attach_plugin(plugin: Any, ctx: RunContext) -> None:
    """Attach ``plugin``; a failure in ``attach`` or later in any handler it registers names it."""
    with guarded_attach(plugin.name, ctx.trainer, ctx.evaluator):
        try:
            plugin.attach(ctx)
        except _pass_through():
            raise
        except Exception as err:
            raise PluginError(plugin.name, "attach", err) from err
    ctx.plugins.append(plugin)


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


@contextmanager
def guarded_attach(name: str, *engines: Engine) -> Iterator[None]:
    """While a plugin attaches, wrap every handler it registers so a failure names it and the event."""
    originals = {id(e): e.add_event_handler for e in engines}
    passing = _pass_through()

    def make(engine: Engine, original: Callable[..., Any]) -> Callable[..., Any]:
        role = "evaluator" if engine is not engines[0] else "trainer"

        def add_event_handler(event_name: Any, handler: Callable, *args: Any, **kwargs: Any) -> Any:
            @functools.wraps(handler)
            def guarded(*a: Any, **kw: Any) -> Any:
                try:
                    return handler(*a, **kw)
                except passing:
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
