"""A distributed run's failures in one line: a rank killed, a rank that raised; the launcher's log lines quiet."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from torch.multiprocessing.spawn import ProcessExitedException, ProcessRaisedException

from mnist_ignite.core.parallel import QUIET_LOGGERS, quiet_distributed_logs, rank_failure
from mnist_ignite.errors import ConfigError, Interrupted, PluginError, RankFailed, RunFailed

from conftest import ROOT, metrics, run_cli, small_args


def _raised(last_line: str) -> ProcessRaisedException:
    trace = "\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call last):\n  ...\n"
    trace += f"{last_line}\n"
    return ProcessRaisedException(trace, 1, 4242)


def test_a_killed_rank_says_which_and_how_and_whether_it_can_resume(tmp_path: Path) -> None:
    died = ProcessExitedException("process 1 terminated with signal SIGKILL", 1, 4242, -9, "SIGKILL")
    error = rank_failure(died, tmp_path)
    assert isinstance(error, RankFailed) and not error.resumable and error.exit_code == 1
    assert str(error) == "rank 1 died (SIGKILL); no checkpoint was saved yet"
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last_checkpoint_16.pt").write_bytes(b"x")
    error = rank_failure(died, tmp_path)
    assert error.resumable and str(error) == "rank 1 died (SIGKILL)" and error.output_dir == tmp_path
    exited = ProcessExitedException("process 1 terminated with exit code 3", 1, 4242, 3)
    assert str(rank_failure(exited, tmp_path)) == "rank 1 died (exit code 3)"


@pytest.mark.parametrize(
    ("last_line", "kind", "text", "code"),
    [
        ("mnist_ignite.errors.ConfigError: --lr must be > 0", ConfigError, "rank 1: --lr must be > 0", 2),
        (  # an error class with arguments of its own: its text, label and exit code
            "mnist_ignite.errors.PluginError: handler 'x' failed in trainer STARTED: ValueError: no",
            RunFailed,
            "rank 1: handler 'x' failed in trainer STARTED: ValueError: no",
            PluginError.exit_code,
        ),
        ("RuntimeError: Connection closed by peer", RankFailed, "rank 1 failed: RuntimeError: Connection closed", 1),
    ],
)
def test_a_rank_that_raised_is_its_own_error_in_one_line(
    last_line: str, kind: type, text: str, code: int, tmp_path: Path
) -> None:
    error = rank_failure(_raised(last_line), tmp_path)
    assert isinstance(error, kind) and str(error).startswith(text) and error.exit_code == code
    assert "\n" not in str(error)


def test_a_rank_stopped_by_a_signal_is_an_interrupted_run(tmp_path: Path) -> None:
    line = "mnist_ignite.errors.Interrupted: SIGTERM received: stopped after the current iteration; "
    line += f"state saved in {tmp_path}"
    error = rank_failure(_raised(line), tmp_path)
    assert isinstance(error, Interrupted) and error.exit_code == 143 and error.output_dir == tmp_path


def test_the_launchers_info_lines_are_dropped_warnings_kept(caplog: pytest.LogCaptureFixture) -> None:
    quiet_distributed_logs()
    quiet_distributed_logs()  # idempotent: one filter per logger
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        assert len(logger.filters) == 1
        record = logger.makeRecord(name, logging.INFO, __file__, 1, "Apply torch DistributedDataParallel", (), None)
        assert not logger.filter(record)
        warning = logger.makeRecord(name, logging.WARNING, __file__, 1, "something is wrong", (), None)
        assert logger.filter(warning)
    spawn = logging.getLogger("torch.multiprocessing.spawn")
    assert not spawn.filter(spawn.makeRecord("s", logging.WARNING, __file__, 1, "Terminating process 1 via", (), None))


KILL_RANK_1 = """\
import os

import ignite.distributed as idist
from ignite.engine import Events

from mnist_ignite.plugins import on


@on(Events.ITERATION_COMPLETED(once={at}))
def die(engine):
    if idist.get_rank() == 1 and not os.environ.get("LET_IT_LIVE"):
        os.kill(os.getpid(), 9)
"""


@pytest.mark.integration  # two processes
def test_a_rank_killed_mid_run_is_one_line_and_the_printed_command_resumes(data_dir: str, tmp_path: Path) -> None:
    handler = tmp_path / "kill_rank_1.py"
    handler.write_text(KILL_RANK_1.format(at=12))  # 8 iterations per epoch: in epoch 2, after a checkpoint
    out = tmp_path / "run"
    args = small_args(
        data_dir, out, "--epochs", "2", "--nproc-per-node", "2", "--backend", "gloo", train=512, eval_=256
    )
    result = run_cli(*args, "--handler", str(handler))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "mnist-ignite: error: rank 1 died (SIGKILL)", result.stderr
    assert lines[1] == "resume with:" and lines[2].strip().endswith(f"--output-dir {out} --resume auto")
    assert len(lines) == 3 and "Traceback" not in result.stdout + result.stderr
    assert "INFO" not in result.stdout + result.stderr  # no launcher log lines
    resumed = run_cli(*args, "--handler", str(handler), "--resume", "auto", env={"LET_IT_LIVE": "1"})
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in metrics(out)] == [1, 2]


SLOW = """\
import time

from ignite.engine import Events

from mnist_ignite.plugins import on


@on(Events.ITERATION_COMPLETED)
def slow(engine):
    time.sleep(0.1)
"""


@pytest.mark.integration  # two processes
@pytest.mark.parametrize(
    ("who", "sig", "code"),
    [("the launcher", signal.SIGTERM, 143), ("the whole group, as Ctrl-C does", signal.SIGINT, 130)],
)
def test_a_signal_stops_every_rank_at_one_point_saves_and_resumes(
    who: str, sig: int, code: int, data_dir: str, tmp_path: Path
) -> None:
    """SIGTERM to the launcher alone is passed on to the ranks; Ctrl-C reaches them all. Either way they agree
    on the iteration to stop at, rank 0 saves, and the printed command resumes."""
    handler = tmp_path / "slow.py"
    handler.write_text(SLOW)
    out = tmp_path / "run"
    args = small_args(
        data_dir, out, "--epochs", "2", "--nproc-per-node", "2", "--backend", "gloo", train=1024, eval_=256
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "train_mnist.py"), *args, "--handler", str(handler)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        for line in proc.stdout:  # the ranks are training: a progress line every few iterations
            if " iter " in line:
                break
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # what the terminal does on Ctrl-C: every process of the group
        else:
            proc.send_signal(sig)  # the launcher alone (a scheduler's SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    lines = err.splitlines()
    assert lines[0].startswith(
        f"mnist-ignite: {signal.Signals(sig).name} received: stopped after the current iteration"
    )
    assert lines[1] == "resume with:" and lines[2].endswith("--resume auto") and len(lines) == 3, err
    assert list((out / "checkpoints").glob("last_checkpoint_*.pt"))
    resumed = run_cli(*args, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in metrics(out)] == [1, 2]
