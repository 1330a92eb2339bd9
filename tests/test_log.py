"""Notes and warnings in the one-line form users see, through standard logging, above any progress bar."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator

import pytest
from tqdm.std import tqdm

from mnist_ignite.log import ConsoleHandler, logger, note, warn, write_line


@pytest.fixture(autouse=True)
def _logger_state() -> Iterator[None]:
    """Each test starts from the logger as imported: a ``logging.config.dictConfig`` elsewhere in the session
    (import-linter's, in tests/test_architecture.py) disables every existing logger."""
    level, disabled = logger.level, logger.disabled
    logger.setLevel(logging.INFO)
    logger.disabled = False
    yield
    logger.setLevel(level)
    logger.disabled = disabled


def test_notes_go_to_stdout_as_they_are_and_warnings_to_stderr_prefixed(capsys: pytest.CaptureFixture[str]) -> None:
    note("resumed from last_checkpoint_4.pt")
    warn("visdom: no answer within 10 s; training goes on")
    logger.error("disk full")
    out, err = capsys.readouterr()
    assert out == "resumed from last_checkpoint_4.pt\n"
    assert err.splitlines() == [
        "mnist-ignite: warning: visdom: no answer within 10 s; training goes on",
        "mnist-ignite: error: disk full",
    ]
    assert err.endswith("\n")


def test_a_record_with_a_traceback_is_still_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise RuntimeError("deep inside")
    except RuntimeError:
        logger.warning("plots: drawing failed", exc_info=True)
    assert capsys.readouterr().err == "mnist-ignite: warning: plots: drawing failed\n"


def test_standard_logging_applies(capsys: pytest.CaptureFixture[str]) -> None:
    """``setLevel`` silences the notes, an added handler captures the records, the root logger never sees them."""
    records: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = records.append  # type: ignore[method-assign]
    root: list[logging.LogRecord] = []
    root_capture = logging.Handler()
    root_capture.emit = root.append  # type: ignore[method-assign]
    logger.addHandler(capture)
    logging.getLogger().addHandler(root_capture)
    try:
        logger.setLevel(logging.WARNING)
        note("hidden")
        warn("shown")
    finally:
        logger.removeHandler(capture)
        logging.getLogger().removeHandler(root_capture)
    assert capsys.readouterr() == ("", "mnist-ignite: warning: shown\n")
    assert [r.getMessage() for r in records] == ["shown"] and root == []
    assert sum(isinstance(h, ConsoleHandler) for h in logger.handlers) == 1  # installed once, however often imported


def test_a_line_lifts_the_live_bar_and_redraws_it_below() -> None:
    stream = io.StringIO()
    bar = tqdm(total=10, file=stream, desc="epoch 1", ascii=True)
    bar.update(3)
    drawn = len(stream.getvalue())
    write_line("epoch 1: test_acc 97.1%", stream)
    after = stream.getvalue()[drawn:]
    bar.close()
    line = after.index("epoch 1: test_acc 97.1%\n")
    assert "\r" in after[:line]  # the bar was cleared first: the line starts on a clean row
    assert "3/10" in after[line:]  # and drawn again below it


def test_a_closed_stdout_does_not_turn_a_note_into_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    monkeypatch.setattr(logging, "raiseExceptions", False)  # logging's own report of a failed emit, silenced
    note("nobody reads this")


def test_a_closed_stderr_does_not_turn_a_warning_into_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    warn("nobody reads this")


def test_fit_breaks_long_lines_at_field_boundaries_never_inside_a_word() -> None:
    from mnist_ignite.log import fit

    header = "  data: 640 training / 256 test images from /tmp/fake; batch 64, 10 iterations per epoch, 2 epochs"
    lines = fit(header, 70).split("\n")
    assert all(len(line) <= 70 for line in lines), lines
    assert lines[0].endswith("batch 64,") and lines[1].startswith("      10 iterations")  # indented past its line
    assert " ".join(x.strip() for x in lines) == header.strip()  # nothing lost, no word cut
    assert fit(header, None) == header and fit("short", 80) == "short"  # a pipe keeps lines whole


def test_print_while_the_bar_is_live_goes_above_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler's bare print() never lands inside the bar's line: each complete line through tqdm.write."""
    from mnist_ignite.log import AboveBar, lines_above_bar

    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = tqdm(total=10, file=terminal, bar_format="BAR {n}/{total}", mininterval=0)
    with lines_above_bar():
        assert isinstance(sys.stdout, AboveBar) and sys.stdout == terminal  # tqdm sees one terminal
        bar.update(3)
        print("gradnorm 0.5", end="")  # a partial line waits for its newline
        print(" at 3")
        print("to stderr", file=sys.stderr)
        bar.update(1)
        print("unfinished", end="")
    bar.close()
    assert sys.stdout is terminal and sys.stderr is terminal  # restored
    screen = [line.rsplit("\r", 1)[-1].strip() for line in terminal.getvalue().split("\n")]
    assert "gradnorm 0.5 at 3" in screen and "to stderr" in screen and "unfinished" in screen, screen
    # the bar was lifted for each line: every printed line starts on a cleared line, not after "BAR 3/10"
    assert "BAR 3/10gradnorm" not in terminal.getvalue()


def test_no_control_echo_turns_echoctl_off_inside_and_back_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import pty
    import termios

    from mnist_ignite.log import no_control_echo

    master, slave = pty.openpty()
    monkeypatch.setattr(os, "tcgetpgrp", lambda fd: os.getpgrp())  # as if this process owned the terminal
    try:
        with open(slave, closefd=False) as stream:
            assert termios.tcgetattr(slave)[3] & termios.ECHOCTL
            with no_control_echo(stream):
                assert not termios.tcgetattr(slave)[3] & termios.ECHOCTL
            assert termios.tcgetattr(slave)[3] & termios.ECHOCTL
            with pytest.raises(KeyboardInterrupt), no_control_echo(stream):
                raise KeyboardInterrupt
            assert termios.tcgetattr(slave)[3] & termios.ECHOCTL  # restored on the way out of Ctrl-C too
    finally:
        os.close(master)
        os.close(slave)
    with no_control_echo(io.StringIO()):  # a captured stdin: nothing to do, no error
        pass
