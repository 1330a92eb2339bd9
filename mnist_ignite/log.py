"""Notes and warnings through ``logging.getLogger("mnist_ignite")``, in the one-line form users see.

Notes (INFO) go to stdout as they are; warnings go to stderr as ``mnist-ignite: warning: ...``.
Every line goes through ``tqdm.write``, which lifts a live progress bar off the screen, writes the
line and redraws the bar below it, so no message ever lands in the middle of a bar.

Standard logging applies to ``logging.getLogger("mnist_ignite")``: ``setLevel(logging.WARNING)``
silences the notes, ``addHandler(...)`` captures the records too. It does not propagate to the
root logger (so an application's own logging set-up never shows a line twice); to route it into
yours instead, ``removeHandler`` its :class:`ConsoleHandler` and set ``propagate = True``.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["PROG", "ConsoleHandler", "LineFormatter", "logger", "note", "warn", "write_line"]

PROG = "mnist-ignite"
logger = logging.getLogger("mnist_ignite")


def write_line(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` and a newline to ``stream`` (stdout by default) above any live progress bar."""
    stream = sys.stdout if stream is None else stream
    from tqdm.std import tqdm

    tqdm.write(text, file=stream)
    stream.flush()


class LineFormatter(logging.Formatter):
    """A note as it is; a warning or worse as ``mnist-ignite: warning: ...`` (the message's first line only
    when it holds a traceback: the one-line rule)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            word = "warning" if record.levelno < logging.ERROR else "error"
            return f"{PROG}: {word}: {message}"
        return message


class ConsoleHandler(logging.Handler):
    """Writes notes to stdout and warnings to stderr, above the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            write_line(self.format(record), stream)
        except (ValueError, OSError):  # a closed or broken stream: the line has nowhere to go, and no crash
            pass


if not any(isinstance(h, ConsoleHandler) for h in logger.handlers):
    _handler = ConsoleHandler()
    _handler.setFormatter(LineFormatter())
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def note(message: str) -> None:
    """An informational line (``logger.info``)."""
    logger.info(message)


def warn(message: str) -> None:
    """A warning line (``logger.warning``)."""
    logger.warning(message)
