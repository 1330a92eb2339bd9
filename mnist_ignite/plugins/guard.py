"""Naming the plugin that failed: every handler a plugin registers reports its own errors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mnist_ignite.errors import CheckpointLoadError, PluginError, PluginLoadError, StopTraining
from mnist_ignite.plugins.api import RunContext

__all__ = ["attach_plugin", "guarded_attach"]

if TYPE_CHECKING:  # torch and Ignite load when a run starts, not for --help
    from ignite.engine import Engine


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
