"""``mnist-ignite`` (and ``python examples/train_mnist.py``): dispatch, and every failure as one line and an exit code.

``mnist-ignite [OPTIONS]`` trains (:mod:`~mnist_ignite.cli.commands.train`); ``mnist-ignite
COMMAND ...`` runs a subcommand of :mod:`mnist_ignite.cli.commands` (or a handler's own
``command``). Every error a user can cause is an :class:`~mnist_ignite.errors.MnistIgniteError`
carrying its exit code: here it becomes ``mnist-ignite: error: ...`` on stderr and that code, for
every command alike. ``--debug`` (or ``MNIST_IGNITE_DEBUG=1``) adds the full traceback.

Exit codes: 0 done, 1 the run failed, 2 bad usage, 128 + N a signal stopped it (130 SIGINT,
143 SIGTERM, 129 SIGHUP: its state is saved, the printed command resumes it).
"""

from __future__ import annotations

import os
import shlex
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnist_ignite.cli.commands import COMMANDS, load_command
from mnist_ignite.errors import ForcedStop, Interrupted, MnistIgniteError, PluginError, PluginLoadError
from mnist_ignite.log import PROG, fit, no_control_echo, terminal_width

__all__ = ["DEBUG_ENV", "main"]

DEBUG_ENV = "MNIST_IGNITE_DEBUG"


def _commands_epilog() -> str:
    width = max(len(n) for n in COMMANDS) if COMMANDS else 0
    lines = [f"  {PROG} {name:<{width}}  {text}" for name, (_, text) in sorted(COMMANDS.items())]
    return "commands (each has its own --help):\n" + "\n".join(lines) + "\n\n" if lines else ""


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
    from mnist_ignite.discovery.handlers import available_plugins, load_plugin_class

    if not argv or argv[0].startswith("-") or argv[0] not in available_plugins():
        return None
    cls = load_plugin_class(argv[0])
    command = getattr(cls, "command", None)
    if command is None:
        raise PluginLoadError(f"handler {argv[0]!r} has no command; did you mean --handler {argv[0]}?")
    return int(command(list(argv[1:])))


def _dispatch(argv: list[str], plugins: Sequence[Any]) -> int:
    if argv and argv[0] in COMMANDS:
        return int(load_command(argv[0])(argv[1:]))
    code = _plugin_command(argv)
    if code is not None:
        return code
    from mnist_ignite.cli.commands import train

    return train.main(argv, plugins, _commands_epilog())


def _debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def main(argv: Sequence[str] | None = None, plugins: Sequence[Any] = ()) -> int:
    """Run the command line; returns the exit code.

    Args:
        argv: arguments (default ``sys.argv[1:]``).
        plugins: ready-made plugin objects to attach too (what examples/custom_handler.py does).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debugging(argv)
    argv = [a for a in argv if a != "--debug"]
    try:
        with no_control_echo():
            return _dispatch(argv, plugins)
    except SystemExit as stop:  # argparse: --help (0), or a usage error it has printed (2)
        return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except KeyboardInterrupt as err:
        if debug:
            traceback.print_exc()
        if isinstance(err, ForcedStop):  # a second signal while stopping: nothing more is saved
            message = "interrupted again: stopped at once, without saving; the newest checkpoint on disk is complete"
        else:
            message = "interrupted before training started: nothing was trained or saved"
        print(f"{PROG}: {message}", file=sys.stderr)
        return 130
    except MnistIgniteError as err:
        if debug:
            traceback.print_exc()
        message = f"{PROG}: {err}" if isinstance(err, Interrupted) else f"{PROG}: {err.label}: {err}"
        if isinstance(err, PluginError) and not debug:
            message += f" (--debug or {DEBUG_ENV}=1 shows the stack)"
        message = fit(message, terminal_width(sys.stderr))  # on a terminal: wrapped between fields, never mid-word
        if isinstance(err, Interrupted) or getattr(err, "resumable", False):  # whole, on its own line: it copies
            message += f"\nresume with:\n  {_resume_command(argv, Path(str(err.output_dir)))}"
        print(message, file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
