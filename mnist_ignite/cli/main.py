"""Command line: ``mnist-ignite`` and ``python examples/train_mnist.py`` (the same entry point).

``mnist-ignite [OPTIONS]`` trains; ``mnist-ignite COMMAND ...`` runs a subcommand
(:mod:`mnist_ignite.commands`, or a handler's own command such as ``visdom``).

Every core option is derived from the :class:`~mnist_ignite.config.Config` declarations. Parsing
happens in two passes, like pytest's addoption: the first finds ``--config`` and the enabled
handlers, the second adds each enabled handler's own options and parses everything. Settings
come from defaults < the TOML file < flags. Torch and Ignite load only when a run starts, so
``--help`` answers at once.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnist_ignite.cli.commands import COMMANDS, load_command
from mnist_ignite.config.argv import parse_config
from mnist_ignite.config.settings import DEFAULT_HANDLERS
from mnist_ignite.errors import ConfigError
from mnist_ignite.log import PROG

__all__ = ["main"]


def _commands_epilog() -> str:
    width = max(len(n) for n in COMMANDS) if COMMANDS else 0
    lines = [f"  {PROG} {name:<{width}}  {text}" for name, (_, text) in sorted(COMMANDS.items())]
    return "commands (each has its own --help):\n" + "\n".join(lines) + "\n\n" if lines else ""


def _list_handlers() -> None:
    from mnist_ignite.errors import PluginLoadError
    from mnist_ignite.plugins.loading import available_plugins, load_plugin_class

    for name in sorted(available_plugins()):
        try:
            description = getattr(load_plugin_class(name), "description", "") or ""
        except PluginLoadError as err:
            description = f"(cannot load: {err})"
        default = " [default]" if name in DEFAULT_HANDLERS else ""
        print(f"{name:<16}{description}{default}")


def _resume_command(argv: Sequence[str], output_dir: Path) -> str:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--resume", "--output-dir"):
            skip = True
            continue
        if arg.startswith(("--resume=", "--output-dir=")) or arg == "--overwrite":
            continue
        kept.append(arg)
    return shlex.join([PROG, *kept, "--output-dir", str(output_dir), "--resume", "auto"])


def _plugin_command(argv: Sequence[str]) -> int | None:
    """``mnist-ignite NAME ...`` where handler NAME defines ``command(argv) -> int``."""
    from mnist_ignite.errors import PluginLoadError
    from mnist_ignite.plugins.loading import available_plugins, load_plugin_class

    if not argv or argv[0].startswith("-") or argv[0] not in available_plugins():
        return None
    cls = load_plugin_class(argv[0])
    command = getattr(cls, "command", None)
    if command is None:
        raise PluginLoadError(f"handler {argv[0]!r} has no command; did you mean --handler {argv[0]}?")
    return int(command(list(argv[1:])))


def _exit_code(err: BaseException) -> tuple[int, str] | None:
    """Exit code and message for the errors a user can cause; None for a bug (its traceback is shown)."""
    from mnist_ignite.errors import (
        CheckpointLoadError,
        OutputWriteError,
        PluginError,
        PluginLoadError,
        RunDirError,
        StopTraining,
    )

    if isinstance(err, (ConfigError, PluginLoadError, RunDirError)):
        return 2, f"{PROG}: error: {err}"
    if isinstance(err, (CheckpointLoadError, OutputWriteError, PluginError)):
        return 1, f"{PROG}: error: {err}"
    from mnist_ignite.errors import LRFindError

    if isinstance(err, LRFindError):
        return 1, f"{PROG}: error: {err}"
    if isinstance(err, StopTraining):
        return err.exit_code, f"{PROG}: stopped: {err}"
    # these modules need torch: only a run (or a command) that already loaded it gets here
    from mnist_ignite.errors import DataError, Interrupted

    if isinstance(err, DataError):
        return 1, f"{PROG}: error: {err}"
    if isinstance(err, Interrupted):
        return err.exit_code, str(err)
    return None


def main(argv: Sequence[str] | None = None, plugins: Sequence[Any] = ()) -> int:
    """Run the command line; returns the exit code.

    Args:
        argv: arguments (default ``sys.argv[1:]``).
        plugins: ready-made plugin objects to attach too (what examples/custom_handler.py does).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return int(load_command(argv[0])(argv[1:]))
        code = _plugin_command(argv)
        if code is not None:
            return code
        if "--list-handlers" in argv:
            _list_handlers()
            return 0
        config = parse_config(argv, _commands_epilog())
        if config.repeat or config.seeds:
            from mnist_ignite.experiments.repeats import run_repeats

            run_repeats(config, plugins)
        else:
            from mnist_ignite.core.launch import train

            train(config, plugins)
        return 0
    except KeyboardInterrupt:  # a second Ctrl-C while stopping: nothing more is saved
        print(
            f"{PROG}: interrupted again: stopped at once, without saving; the last checkpoint on disk is "
            "the newest complete one",
            file=sys.stderr,
        )
        return 130
    except Exception as err:
        handled = _exit_code(err)
        if handled is None:
            raise
        code, message = handled
        if code in (130, 143):
            message = f"{PROG}: {err}\nresume with:\n  {_resume_command(argv, err.output_dir)}"  # type: ignore[attr-defined]
        print(message, file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
