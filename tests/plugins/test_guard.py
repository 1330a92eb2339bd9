"""A failing plugin is named with its event and its own line; nothing a plugin raises ends a run silently."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from ignite.engine import Events

from mnist_ignite.errors import PluginError, PluginLoadError, StopTraining
from mnist_ignite.plugins import Plugin, RunContext
from mnist_ignite.testing import run_plugin

BOOM = textwrap.dedent(
    """
    from ignite.engine import Events


    class Boom:
        name = "boom"

        def __init__(self, error):
            self.error = error

        def attach(self, ctx):
            ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED, self.on_iter)

        def on_iter(self, engine):
            if engine.state.iteration == 2:
                raise self.error
    """
)


@pytest.fixture()
def boom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> type:
    (tmp_path / "boom.py").write_text(BOOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    import boom as module

    yield module.Boom
    sys.modules.pop("boom", None)


@pytest.mark.parametrize(
    "error",
    [RuntimeError("kaboom"), SystemExit(0), KeyboardInterrupt(), GeneratorExit(), KeyError("nll"), StopIteration()],
    ids=["RuntimeError", "SystemExit", "KeyboardInterrupt", "GeneratorExit", "KeyError", "StopIteration"],
)
def test_anything_a_handler_raises_is_that_plugin_failing_at_its_line(boom: type, error: BaseException) -> None:
    with pytest.raises(PluginError) as caught:
        run_plugin(boom(error))
    message = str(caught.value)
    assert message.startswith("handler 'boom' failed in trainer ITERATION_COMPLETED at boom.py:16 in on_iter")
    assert type(error).__name__ in message
    assert caught.value.__cause__ is error  # the whole stack, for --debug


def test_a_stop_in_the_users_terms_passes_through(boom: type) -> None:
    with pytest.raises(StopTraining, match="enough"):
        run_plugin(boom(StopTraining("enough")))


def test_a_failing_attach_is_named() -> None:
    class Broken(Plugin):
        name = "broken"

        def attach(self, ctx: RunContext) -> None:
            raise ValueError("no attach today")

    expected = r"handler 'broken' failed in attach at test_guard.py:\d+ in attach: ValueError"
    with pytest.raises(PluginError, match=expected):
        run_plugin(Broken())


def test_a_failure_in_an_evaluator_handler_names_the_evaluator() -> None:
    class Judge(Plugin):
        name = "judge"

        def attach(self, ctx: RunContext) -> None:
            ctx.evaluator.add_event_handler(Events.COMPLETED, self.done)

        def done(self) -> None:
            raise ValueError("unfair")

    with pytest.raises(PluginError, match="handler 'judge' failed in evaluator COMPLETED"):
        run_plugin(Judge())


def test_an_exception_raised_handler_cannot_swallow_the_failure() -> None:
    """Ignite stops re-raising once any EXCEPTION_RAISED handler exists; a plugin's still sees it, then it goes on."""
    seen: list[str] = []

    class Logger(Plugin):
        name = "logger"

        def attach(self, ctx: RunContext) -> None:
            ctx.trainer.add_event_handler(Events.EXCEPTION_RAISED, lambda e, err: seen.append(type(err).__name__))
            ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2), self.fail)

        def fail(self) -> None:
            raise OSError("disk")

    with pytest.raises(PluginError, match="OSError: disk"):
        run_plugin(Logger())
    assert "OSError" in seen


def test_handlers_of_one_plugin_can_be_removed_and_found_again() -> None:
    found: dict[str, bool] = {}

    class Once(Plugin):
        name = "once"

        def attach(self, ctx: RunContext) -> None:
            self.trainer = ctx.trainer
            ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED, self.first)

        def first(self) -> None:
            found["registered"] = self.trainer.has_event_handler(self.first, Events.ITERATION_COMPLETED)
            self.trainer.remove_event_handler(self.first, Events.ITERATION_COMPLETED)
            found["after"] = self.trainer.has_event_handler(self.first)

    run = run_plugin(Once())
    assert found == {"registered": True, "after": False}
    assert run.calls["once"] == {"trainer ITERATION_COMPLETED": 1}


def test_two_plugins_with_one_name_are_refused() -> None:
    class A(Plugin):
        name = "same"

        def attach(self, ctx: RunContext) -> None:
            pass

    with pytest.raises(PluginLoadError, match="two handlers are named 'same'"):
        run_plugin(A(), A())
