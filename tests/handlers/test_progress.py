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

import pytest

from mnist_ignite.cli import main

from conftest import ROOT, small_args

BAR_END = re.compile(
    r"^epoch (\d+)/(\d+): 100%\|[^|]*\| (\d+)/\3 \[\d\d:\d\d<00:00, "
    r"loss (\d\.\d{4}), acc (\d+\.\d\d)%, [\d,]+ img/s\]$"
)
EPOCH_LINE = re.compile(r"^epoch +(\d+)/\d+  lr [\d.]+  train loss (\d\.\d{4}) acc +(\d+\.\d\d)%  test loss")


def _run_on_a_terminal(args: list[str], columns: int = 120) -> tuple[int, str]:
    """The CLI with stdout and stderr on one pty of ``columns`` columns, as a user's terminal; returns (rc, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "train_mnist.py"), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=600), b"".join(chunks).decode()


def _screen(output: str) -> list[str]:
    """The lines a terminal shows: a carriage return rewrites its line (tqdm pads a shorter rewrite with blanks)."""
    return [line.rsplit("\r", 1)[-1].rstrip() for line in output.replace("\r\n", "\n").split("\n")]


def test_on_a_terminal_each_epoch_keeps_its_bar_line_then_its_own_epoch_line(data_dir: str, tmp_path: Path) -> None:
    args = [a for a in small_args(data_dir, tmp_path / "t", "--epochs", "2", train=512, eval_=256) if a != "--no-plots"]
    rc, output = _run_on_a_terminal(args)
    assert rc == 0, output
    lines = _screen(output)
    bars = [(i, BAR_END.match(line)) for i, line in enumerate(lines) if BAR_END.match(line)]
    assert [m.group(1, 2) for _, m in bars] == [("1", "2"), ("2", "2")], lines
    for i, bar in bars:
        epoch = EPOCH_LINE.match(lines[i + 1])  # the core's line comes next, on a line of its own
        assert epoch, lines
        # the kept line shows the epoch's own numbers, the accuracy in %
        assert epoch.group(1, 2, 3) == (bar.group(1), bar.group(4), bar.group(5))
    # nothing else shares a line with the bar or with an epoch line
    assert all(line.startswith("epoch") for line in lines if "%|" in line or " lr 0." in line), lines


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
