"""What the commands share: the program name, one-line errors, ``--data-dir``/``--device``.

Light on purpose (no torch): every command's ``--help`` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from mnist_ignite.config import default_data_dir

__all__ = [
    "PROG",
    "DefaultsHelpFormatter",
    "HelpFormatter",
    "Parser",
    "add_data_args",
    "command_parser",
    "error",
    "flag_type",
]

PROG = "mnist-ignite"


def error(message: str, code: int = 1) -> int:
    """Print the one-line error and return ``code`` (1: the run failed, 2: usage)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--device``, as in training."""
    parser.add_argument("--data-dir", default=default_data_dir(), help="MNIST folder (torchvision layout)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


class Parser(argparse.ArgumentParser):
    """Short errors with a "did you mean", instead of the whole usage block."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            unknown = [a.split("=")[0] for a in message.split(":", 1)[1].split() if a.startswith("-")]
            flags = [s for a in self._actions for s in a.option_strings]
            hints = []
            for arg in unknown:
                close = difflib.get_close_matches(arg, flags, n=1, cutoff=0.6)
                hints.append(f"unknown option {arg}" + (f" (did you mean {close[0]}?)" if close else ""))
            if hints:
                message = "; ".join(hints)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something (not for switches or empty values)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or isinstance(default, bool) or default in ("", []) or default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action) or ""


class HelpFormatter(DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The same, keeping the description's own line breaks (the main command's examples)."""


def command_parser(name: str, description: str, epilog: str | None = None) -> Parser:
    """The parser of ``mnist-ignite NAME``: one-line errors with a "did you mean", defaults in --help."""
    return Parser(prog=f"{PROG} {name}", description=description, epilog=epilog, formatter_class=DefaultsHelpFormatter)


def flag_type(
    kind: type, check: Callable[[Any], bool] | None, rule: str, accepts: tuple[str, ...] = ()
) -> Callable[[str], Any]:
    """An argparse ``type`` from a value type and its rule (``check``), with one-line messages."""

    def parse(text: str) -> Any:
        if text in accepts:
            return text
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if check is not None and (value != value or not check(value)):
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse
