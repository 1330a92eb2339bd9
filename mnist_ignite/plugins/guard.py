"""Naming the plugin that failed, and where in its own code.

The run's engines (:class:`~mnist_ignite.core.engines.RunEngine`) know which plugin registered
each handler and mark an exception raised inside one with that plugin (:func:`mark_origin`). Here
such an exception becomes one :class:`~mnist_ignite.errors.PluginError` line that names the plugin,
the event and the innermost line of the plugin's own file (``boom.py:12 in on_iter``); the
original exception stays its ``__cause__``, so ``--debug`` shows the whole stack.

Errors that already speak the user's language (any :class:`~mnist_ignite.errors.MnistIgniteError`:
a NaN stop, a refused checkpoint) pass through unchanged, and so does a second Ctrl-C
(:class:`~mnist_ignite.errors.ForcedStop`). Anything else a plugin raises is its
failure, ``SystemExit``, ``KeyboardInterrupt`` and ``GeneratorExit`` from its code included: a
plugin cannot end a run with a silent exit 0.
"""

from __future__ import annotations

import contextlib
import inspect
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mnist_ignite.errors import ForcedStop, MnistIgniteError, PluginError
from mnist_ignite.log import warn
from mnist_ignite.plugins.api import RunContext

__all__ = [
    "attach_plugin",
    "close_plugins",
    "handler_origin",
    "mark_origin",
    "named_failure",
    "named_failures",
    "source_file",
]

_ORIGIN = "mnist_ignite_origin"  # on an exception raised by a plugin's handler: (plugin, where)


def mark_origin(err: BaseException, plugin: Any, where: str) -> None:
    """Record on ``err`` that ``plugin``'s handler raised it at ``where`` (the innermost plugin wins)."""
    if getattr(err, _ORIGIN, None) is None:
        with contextlib.suppress(AttributeError):
            setattr(err, _ORIGIN, (plugin, where))


def handler_origin(err: BaseException) -> tuple[Any, str] | None:
    """The plugin whose handler raised ``err`` and where (``trainer ITERATION_COMPLETED``), or None."""
    return getattr(err, _ORIGIN, None)


def source_file(plugin: Any) -> str | None:
    """The file that defines ``plugin`` (its function for a function plugin)."""
    target = getattr(plugin, "attach", None)
    target = getattr(target, "__func__", target)
    for obj in (getattr(type(plugin), "function", None), target, type(plugin)):
        with contextlib.suppress(TypeError, OSError):
            if obj is not None and (path := inspect.getsourcefile(obj)):
                return str(Path(path).resolve())
    return None


def _location(err: BaseException, plugin: Any) -> str:
    """``file.py:LINE in FUNCTION``: the innermost frame of ``err`` in the plugin's own file."""
    mine = source_file(plugin)
    if mine is None:
        return ""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if str(Path(f.filename).resolve()) == mine]
    if not frames:
        return ""
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"


def named_failure(err: BaseException) -> PluginError | None:
    """The :class:`PluginError` that ``err`` stands for when a plugin's handler raised it; None otherwise."""
    origin = handler_origin(err)
    if origin is None and isinstance(err, RuntimeError) and isinstance(err.__cause__, StopIteration):
        err = err.__cause__  # Python turns a StopIteration inside Ignite's run generator into this RuntimeError
        origin = handler_origin(err)
    if origin is None or isinstance(err, (MnistIgniteError, ForcedStop)):
        return None
    plugin, where = origin
    return PluginError(plugin.name, where, err, _location(err, plugin))


@contextlib.contextmanager
def named_failures() -> Iterator[None]:
    """Inside this block, an exception a plugin's handler raised leaves as its :class:`PluginError`."""
    try:
        yield
    except BaseException as err:
        failure = named_failure(err)
        if failure is None:
            raise
        raise failure from failure.error


def attach_plugin(plugin: Any, ctx: RunContext) -> None:
    """Attach ``plugin``: its handlers are owned by it (see the module docstring); a failure names it."""
    with contextlib.ExitStack() as owned:
        for engine in (ctx.trainer, ctx.evaluator):
            if hasattr(engine, "owned_by"):
                owned.enter_context(engine.owned_by(plugin))
        try:
            plugin.attach(ctx)
        except (MnistIgniteError, ForcedStop):
            raise
        except BaseException as err:
            failure = named_failure(err) or PluginError(plugin.name, "attach", err, _location(err, plugin))
            raise failure from err
    ctx.plugins.append(plugin)


def close_plugins(plugins: Sequence[Any]) -> None:
    """Call each plugin's optional ``close()`` once the run has ended, succeeded or failed (last attached first).

    The core does this in a ``finally`` instead of plugins listening to ``Events.EXCEPTION_RAISED``
    (a handler there makes Ignite swallow the exception). A failing ``close()`` warns, naming the
    plugin, and never hides the run's own error.
    """
    for plugin in reversed(list(plugins)):
        close = getattr(plugin, "close", None)
        if not callable(close):
            continue
        try:
            close()
        except Exception as err:  # cleanup must not mask the run's outcome
            warn(f"handler {plugin.name!r}: close failed: {type(err).__name__}: {err}")
