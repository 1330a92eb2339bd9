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

import contextlib
import logging
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from typing import TextIO

__all__ = [
    "PROG",
    "AboveBar",
    "ConsoleHandler",
    "LineFormatter",
    "fit",
    "in_notebook",
    "ipython_shell",
    "lines_above_bar",
    "logger",
    "no_control_echo",
    "note",
    "terminal_width",
    "warn",
    "write_line",
]

PROG = "mnist-ignite"
logger = logging.getLogger("mnist_ignite")


# where a long line may break: after ", " "; " or ": ", or at a run of spaces between columns
_FIELD_END = re.compile(r"(?<=[,;:]) (?! )|(?<=\S)  +")


def ipython_shell() -> object | None:
    """The running IPython shell, or None; never imports IPython (a kernel imported it long before us).

    Another thread may be importing it right now (mlflow's worker does): a module still half-initialized
    has no ``get_ipython`` yet, and then this is no notebook either.
    """
    get = getattr(sys.modules.get("IPython"), "get_ipython", None)
    return get() if get is not None else None


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel, VS Code, Colab), where figures and bars render in cell outputs."""
    return getattr(ipython_shell(), "kernel", None) is not None


def terminal_width(stream: TextIO | None = None) -> int | None:
    """Columns of the terminal ``stream`` (stdout by default) shows, or None for a pipe, a file or a notebook."""
    stream = sys.stdout if stream is None else stream
    while isinstance(stream, AboveBar):
        stream = stream.wrapped
    try:
        return os.get_terminal_size(stream.fileno()).columns or None if stream.isatty() else None
    except (AttributeError, OSError, ValueError):  # no fileno (a notebook), a closed stream
        return None


def fit(text: str, width: int | None) -> str:
    """``text`` with every line longer than ``width`` broken at field boundaries, never inside a word.

    A continuation is indented four spaces past its line's own indent, so a wrapped header field
    still reads as part of its line. ``width=None`` (a pipe, a log file) keeps lines whole.
    """
    if not width:
        return text
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        pieces, start = [], 0
        for m in _FIELD_END.finditer(line):
            pieces.append(line[start : m.end()])
            start = m.end()
        pieces.append(line[start:])
        current = ""
        for piece in pieces:
            if current and len(current.rstrip()) + len(piece.rstrip()) > width:
                out.append(current.rstrip())
                current = indent
            current += piece
            if len(current.rstrip()) > width:  # one field longer than the line: break it at its spaces
                wrapped = textwrap.wrap(
                    current.strip(),
                    width=width,
                    initial_indent=current[: len(current) - len(current.lstrip())],
                    subsequent_indent=indent,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                out.extend(wrapped[:-1])
                current = wrapped[-1] + " " if wrapped else indent
        out.append(current.rstrip())
    return "\n".join(out)


def write_line(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` and a newline to ``stream`` (stdout by default) above any live progress bar,
    broken at field boundaries to fit a terminal's width."""
    stream = sys.stdout if stream is None else stream
    while isinstance(stream, AboveBar):  # write to the terminal it stands for, once
        stream = stream.wrapped
    from tqdm.std import tqdm

    tqdm.write(fit(text, terminal_width(stream)), file=stream)
    stream.flush()


class AboveBar:
    """``sys.stdout`` or ``sys.stderr`` while a progress bar is live: a ``print()`` goes above the bar.

    tqdm's redirect recipe (``tqdm.contrib.DummyTqdmFile``: each complete line through ``tqdm.write``,
    a partial line waits for its newline), with its buffer kept here rather than on the wrapped
    stream, and the equality tqdm's own stream wrapper has, so that tqdm sees the wrapper and its
    stream as one terminal and lifts a bar on stderr for a line printed to stdout.
    """

    def __init__(self, stream: TextIO) -> None:
        self._wrapped = stream  # tqdm's name: its stream wrappers compare equal through it
        self._pending = ""

    @property
    def wrapped(self) -> TextIO:
        return self._wrapped

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            write_line(line, self.wrapped)
        return len(text)

    def flush(self) -> None:
        self.wrapped.flush()

    def drain(self) -> None:
        """Write a partial line still waiting for its newline."""
        text, self._pending = self._pending, ""
        if text:
            write_line(text, self.wrapped)

    def __getattr__(self, name: str) -> object:  # isatty, fileno, encoding...: the stream's own
        if name == "_wrapped":
            raise AttributeError(name)
        return getattr(self._wrapped, name)

    def __eq__(self, other: object) -> bool:
        return self._wrapped == getattr(other, "_wrapped", other)

    def __hash__(self) -> int:
        return hash(self._wrapped)


@contextlib.contextmanager
def lines_above_bar() -> Iterator[None]:
    """While inside: ``print()`` (to stdout or stderr) from anywhere writes its lines above the bar."""
    saved = sys.stdout, sys.stderr
    out, err = AboveBar(sys.stdout), AboveBar(sys.stderr)
    sys.stdout, sys.stderr = out, err
    try:
        yield
    finally:
        # restore only what is still ours (a notebook or a test may have swapped the streams meanwhile)
        if sys.stdout is out:
            sys.stdout = saved[0]
        if sys.stderr is err:
            sys.stderr = saved[1]
        out.drain()
        err.drain()


@contextlib.contextmanager
def no_control_echo(stream: TextIO | None = None) -> Iterator[None]:
    """While inside, the terminal does not echo ``^C`` (its ``ECHOCTL`` flag off): Ctrl-C's message starts on a
    clean line instead of after a stray ``^C`` glued to the progress bar. Restored on the way out; nothing
    changes when ``stream`` (default stdin) is no terminal, or when this process is not in the foreground."""
    try:
        import termios
    except ImportError:  # not a POSIX terminal
        yield
        return
    saved, fd = None, -1
    try:
        fd = (stream or sys.stdin).fileno()
        if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
            saved = termios.tcgetattr(fd)
            quiet = list(saved)
            quiet[3] &= ~termios.ECHOCTL
            termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except (AttributeError, ValueError, OSError, termios.error):  # a closed, captured or odd stdin: leave it
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            with contextlib.suppress(ValueError, OSError, termios.error):
                termios.tcsetattr(fd, termios.TCSANOW, saved)


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
