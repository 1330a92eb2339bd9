from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte
import pytest

from mnist_ignite.cli import main
from mnist_ignite.testing import fake_mnist

from conftest import ROOT, small_args

BAR_END = re.compile(
    r"^epoch (\d+)/(\d+): 100%\|[^|]*\| (\d+)/\3 \[\d\d:\d\d<00:00, "
    r"loss (\d\.\d{4}), acc (\d+\.\d\d)%, [\d,]+ img/s\]$"
)


def _on_a_terminal(args: list[str], columns: int = 120, ctrl_c: bool = False) -> tuple[int, str, bool]:
    """The CLI as the foreground job of a real terminal of ``columns`` columns (stdin, stdout and stderr on its
    pty); with ``ctrl_c``, Ctrl-C typed once the bar is live.

    Returns (rc, output, whether the terminal echoes control characters afterwards).
    """
    import select
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))

    def controlling_terminal() -> None:  # the pty becomes the child's terminal, the child its foreground job
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "train_mnist.py"), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    chunks: list[bytes] = []
    typed, deadline = False, time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        if ctrl_c and not typed and b"%|" in b"".join(chunks[-3:]):
            os.write(master, b"\x03")  # Ctrl-C, through the terminal's line discipline
            typed = True
        if proc.poll() is not None and not ready:
            break
    rc = proc.wait(timeout=60)
    echoes = bool(termios.tcgetattr(slave)[3] & termios.ECHOCTL)
    os.close(slave)
    os.close(master)
    return rc, b"".join(chunks).decode(), echoes


def _run_on_a_terminal(args: list[str], columns: int = 120) -> tuple[int, str]:
    """The CLI with stdout and stderr on one pty of ``columns`` columns, as a user's terminal; returns (rc, output)."""
    rc, output, _ = _on_a_terminal(args, columns)
    return rc, output


def _screen(output: str, columns: int = 1000) -> list[str]:
    """What a terminal shows after ``output``, through a real terminal emulator (pyte).

    The emulated screen is wider than the pty the program was told about, so a line the program
    wrote too long for its terminal shows as a line longer than ``columns`` instead of wrapping.
    """
    screen = pyte.Screen(columns, 2000)
    pyte.Stream(screen).feed(output)
    return [line.rstrip() for line in screen.display if line.strip()]


CHATTY = """\
from ignite.engine import Events


def attach(ctx):
    @ctx.trainer.on(Events.ITERATION_COMPLETED(every=3))
    def say(engine):
        print(f"chatty: iteration {engine.state.iteration}")
"""


@pytest.mark.integration  # a process on a pty
@pytest.mark.parametrize("columns", [120, 80])
def test_on_a_terminal_one_line_per_epoch_and_prints_above_the_bar(tmp_path: Path, columns: int) -> None:
    """A handler's bare print() never breaks the bar; each finished epoch leaves one line; every line fits."""
    handler = tmp_path / "chatty.py"
    handler.write_text(CHATTY)
    data = fake_mnist(tmp_path / "data", train=640, test=128)  # 10 batches of 64 per epoch
    args = ["--data-dir", str(data), "--no-download", "--device", "cpu", "--output-dir", str(tmp_path / "t")]
    rc, output = _run_on_a_terminal([*args, "--epochs", "2", "--handler", str(handler)], columns)
    assert rc == 0, output
    assert "%|" in output  # the bar was live
    lines = _screen(output)
    assert all(len(line) <= columns for line in lines), [line for line in lines if len(line) > columns]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"], lines  # one line each: the bar gave its place
    assert ("  train loss " in epochs[0]) == (columns >= 100)  # the compact form below 100 columns
    said = [line for line in lines if "chatty:" in line]
    assert [line for line in said] == [f"chatty: iteration {i}" for i in (3, 6, 9, 12, 15, 18)], lines
    assert not any("%|" in line for line in lines), lines  # no bar left behind
    assert "resume" not in output and "Traceback" not in output


def test_with_progress_always_the_bar_goes_to_a_pipe_too(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(small_args(data_dir, tmp_path / "p", "--epochs", "1", "--progress-always", train=256, eval_=64)) == 0
    captured = capsys.readouterr()
    kept = [line for line in _screen(captured.err) if BAR_END.match(line)]
    assert len(kept) == 1 and "img/s]\n" in captured.err, captured.err  # the final line, ended by a newline
    assert "epoch   1/1" in captured.out  # the per-epoch line stays


def test_no_bar_when_not_a_terminal(data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(small_args(data_dir, tmp_path / "q", "--epochs", "1", train=128, eval_=64)) == 0
    captured = capsys.readouterr()
    assert "%|" not in captured.err and "img/s]" not in captured.err


@pytest.mark.integration  # a process on a pty
@pytest.mark.parametrize("columns", [120, 80])
def test_ctrl_c_on_a_terminal_leaves_no_stray_caret_and_the_terminal_as_it_was(tmp_path: Path, columns: int) -> None:
    data = fake_mnist(tmp_path / "data", train=6400, test=128)  # 100 batches: time to type Ctrl-C mid-epoch
    args = ["--data-dir", str(data), "--no-download", "--device", "cpu", "--output-dir", str(tmp_path / "t")]
    rc, output, echoes = _on_a_terminal([*args, "--epochs", "3"], columns, ctrl_c=True)
    assert rc == 130, output
    assert "^C" not in output, output  # the terminal did not echo it over the bar
    lines = _screen(output)
    assert any(line.startswith("mnist-ignite: SIGINT received: stopped after the current iteration") for line in lines)
    assert lines[-2:][0] == "resume with:" and lines[-1].endswith("--resume auto"), lines
    too_long = [line for line in lines[:-1] if len(line) > columns]  # all but the command, which copies whole
    assert not too_long, too_long
    assert echoes  # ECHOCTL back on for the shell that ran it
