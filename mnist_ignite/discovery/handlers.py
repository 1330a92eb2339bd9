"""Finding plugins: built-in names, ``mnist_ignite.handlers`` entry points, ``module:Attr``, ``file.py:Attr``
and ``file.py``; a plugin class, an ``attach(ctx)`` function, or Ignite handlers ``fn(engine)`` marked
with :func:`mnist_ignite.plugins.on`."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mnist_ignite.discovery.specs import check_name, registered, resolve
from mnist_ignite.errors import PluginLoadError, SpecError, did_you_mean

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "ON_ATTR",
    "as_plugin",
    "available_plugins",
    "build_plugin",
    "build_plugins",
    "check_handler_name",
    "load_plugin_class",
    "option_owner",
    "options_of",
    "unknown_option",
]


ENTRY_POINT_GROUP = "mnist_ignite.handlers"
ON_ATTR = "__mnist_ignite_on__"  # [(engine name, event), ...]: set by mnist_ignite.plugins.on


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
    "visdom": "mnist_ignite.handlers.visdom:VisdomPlugin",
    "tensorboard": "mnist_ignite.handlers.trackers.tensorboard:TensorBoardPlugin",
    "mlflow": "mnist_ignite.handlers.trackers.mlflow:MLflowPlugin",
}


def available_plugins() -> dict[str, str]:
    """Name -> ``module:attr`` for built-ins and installed entry points (entry points win)."""
    return registered(BUILTINS, ENTRY_POINT_GROUP)


def check_handler_name(spec: str) -> None:
    """Refuse a handler name that is neither known nor a ``module:Attr`` / ``file.py:Attr`` spec."""
    try:
        check_name(spec, available_plugins(), "handler", whole_file=True)
    except SpecError as err:
        raise PluginLoadError(str(err)) from None


def load_plugin_class(spec: str) -> type:
    """Resolve ``NAME``, ``package.module:Attr``, ``path/to/file.py:Attr`` or ``path/to/file.py`` to a plugin class."""
    try:
        obj = resolve(spec, available_plugins(), "handler", whole_file=True)
    except SpecError as err:
        raise PluginLoadError(str(err)) from None
    if inspect.ismodule(obj):
        obj = _the_plugin_in(spec, obj)
    if isinstance(obj, list):  # the @on handlers of a file
        return _ignite_handlers_plugin(Path(spec).stem, obj)
    if inspect.isfunction(obj) and getattr(obj, ON_ATTR, None):
        return _ignite_handlers_plugin(obj.__name__, [obj])
    if inspect.isfunction(obj):
        _refuse_bare_ignite_handler(spec, obj)
        return _function_plugin(obj)
    if not inspect.isclass(obj) or not callable(getattr(obj, "attach", None)):
        target = available_plugins().get(spec, spec)
        raise PluginLoadError(
            f"handler {spec!r}: {target} is not a plugin (a class with attach(ctx), or a function attach(ctx))"
        )
    return obj


def _the_plugin_in(spec: str, module: Any) -> Any:
    """A file's one plugin: the classes with ``attach`` defined in it, or else its ``attach`` function."""
    own = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and callable(getattr(obj, "attach", None))
    ]
    if len(own) == 1:
        return own[0]
    if own:
        names = ", ".join(f"{spec}:{c.__name__}" for c in own)
        raise PluginLoadError(f"handler {spec!r}: the file holds {len(own)} plugins; name one: {names}")
    if inspect.isfunction(getattr(module, "attach", None)):
        return module.attach
    marked = [f for f in vars(module).values() if inspect.isfunction(f) and getattr(f, ON_ATTR, None)]
    if marked:
        return marked
    raise PluginLoadError(
        f"handler {spec!r}: the file has no plugin (a class with attach(ctx), a function attach(ctx), "
        "or functions fn(engine) marked @on(Events...))"
    )


def _refuse_bare_ignite_handler(spec: str, func: Callable[..., Any]) -> None:
    """An Ignite handler ``fn(engine)`` named without an event: say how to give it one."""
    params = list(inspect.signature(func).parameters)
    if params and params[0] in ("engine", "trainer", "evaluator"):
        raise PluginLoadError(
            f"handler {spec!r}: {func.__name__}({params[0]}) looks like an Ignite event handler, which needs an "
            "event: mark it with @on(Events.ITERATION_COMPLETED(every=100)) (from mnist_ignite.plugins import on), "
            "or write attach(ctx) and add it there with ctx.trainer.add_event_handler(...)"
        )


def _ignite_handlers_plugin(name: str, funcs: list[Callable[..., Any]]) -> type:
    """A plugin attaching each ``@on``-marked ``fn(engine)`` to its engine and event, as Ignite would."""

    def attach(ctx: Any) -> None:
        for func in funcs:
            for engine, event in getattr(func, ON_ATTR):
                getattr(ctx, engine).add_event_handler(event, func)

    doc = (funcs[0].__doc__ or "").strip().splitlines()
    return type(
        name,
        (),
        {
            "name": name,
            "description": doc[0] if doc else f"Ignite handlers: {', '.join(f.__name__ for f in funcs)}",
            "attach": staticmethod(attach),
            "function": staticmethod(funcs[0]),  # where its code is, for error messages
        },
    )


def _function_plugin(func: Callable[[Any], None]) -> type:
    """A plugin class around a plain ``attach(ctx)`` function (Ignite takes any callable as a handler).

    Its name is the function's ``name`` attribute when it has one, else the function's name, or
    for a function called ``attach`` its module's (``grad_norm.py:attach`` is ``grad_norm``), so
    two files' ``attach`` functions do not share a name.
    """
    doc = (func.__doc__ or "").strip().splitlines()
    name = getattr(func, "name", None) or func.__name__
    if name == "attach":
        module = sys.modules.get(func.__module__)
        file = getattr(module, "__file__", None)
        name = Path(file).stem if file else func.__module__.rpartition(".")[2]
    return type(
        name,
        (),
        {
            "name": name,
            "description": doc[0] if doc else "",
            "attach": staticmethod(func),
            "function": staticmethod(func),  # where its code is, for error messages
        },
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


def build_plugins(handlers: Sequence[str], options: dict[str, Any], extra: Sequence[Any] = ()) -> list[Any]:
    """The plugins ``handlers`` name, built with their ``options`` (by dest name), then ready-made ``extra`` ones.

    Two plugins with one name are refused: each plugin's checkpoint state is kept under its name.
    """
    plugins = []
    for spec in handlers:
        cls = load_plugin_class(spec)
        values = {o.dest: options[o.dest] for o in getattr(cls, "options", ()) if o.dest in options}
        plugins.append(build_plugin(spec, cls, values))
    plugins += [as_plugin(p) for p in extra]
    seen: dict[str, str] = {}
    for plugin, spec in zip(plugins, [*handlers, *(repr(p) for p in extra)], strict=True):
        if plugin.name in seen:
            raise PluginLoadError(
                f"two handlers are named {plugin.name!r} ({seen[plugin.name]} and {spec}): each needs its own name "
                "(its state is saved under it); set name = '...' on one of them"
            )
        seen[plugin.name] = spec
    return plugins


def options_of(handlers: Sequence[str]) -> dict[str, tuple[str, Any]]:
    """The options of these handlers: dest name -> (the handler's spec, its ``Option``)."""
    found: dict[str, tuple[str, Any]] = {}
    for spec in handlers:
        for option in getattr(load_plugin_class(spec), "options", ()):
            found[option.dest] = (spec, option)
    return found


def option_owner(dest: str) -> str | None:
    """The available handler (built-in or entry point) that declares option ``dest``, if one does."""
    for name in sorted(available_plugins()):
        try:
            if any(o.dest == dest for o in getattr(load_plugin_class(name), "options", ())):
                return name
        except PluginLoadError:  # a broken third-party entry point must not hide the hint
            continue
    return None


def unknown_option(
    dest: str, enabled: Sequence[str], spelled: str, known: Sequence[str] = (), enable: str = "--handler {owner}"
) -> str:
    """Why option ``dest`` (written ``spelled``) is not accepted: whose option it is, or the nearest known one.

    ``enable`` says how to enable the owning handler (``--handler {owner}`` on the command line).
    """
    owner = option_owner(dest)
    if owner is not None and owner not in enabled:
        return f"{spelled} belongs to handler {owner!r}: enable it with {enable.format(owner=owner)}"
    names = list(known) or [f"--{o.name}" for spec in enabled for o in getattr(load_plugin_class(spec), "options", ())]
    return f"unknown option {spelled}" + did_you_mean(spelled, names)
