"""Crash-exact resume, clean interrupts (real processes and signals)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mnist_ignite.cli import main

from conftest import ROOT, metrics, run_cli, small_args

# the reliability issue's acceptance command (no plots: the default run's files are what is compared)
ACCEPT = ("--epochs", "2", "--batch-size", "64", "--seed", "3", "--checkpoint-every-iters", "5")


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "train_mnist.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "final_model.pt", weights_only=True)


def test_kill_9_mid_epoch_then_resume_gives_bitwise_identical_weights(data_dir: str, tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(small_args(data_dir, straight, *ACCEPT, train=1280, eval_=256)) == 0
    proc = start(*small_args(data_dir, killed, *ACCEPT, train=1280, eval_=256))
    ckpts = killed / "checkpoints"
    # 20 iterations per epoch: kill once a mid-epoch checkpoint of epoch 2 exists
    wait_for(
        lambda: (
            any(p.name in ("last_checkpoint_25.pt", "last_checkpoint_30.pt") for p in ckpts.glob("*.pt"))
            if ckpts.is_dir()
            else False
        )
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final_model.pt").exists()
    resumed = run_cli(*small_args(data_dir, killed, *ACCEPT, "--resume", "auto", train=1280, eval_=256))
    assert resumed.returncode == 0, resumed.stderr
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in metrics(killed)] == [1, 2]
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")
    assert [[r[k] for k in keys] for r in metrics(killed)] == [[r[k] for k in keys] for r in metrics(straight)]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_prints_the_resume_command_and_exits(sig: int, code: int, data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "sig"
    args = small_args(data_dir, out, "--epochs", "50", "--checkpoint-every-iters", "1000", train=256, eval_=64)
    proc = start(*args)
    wait_for(lambda: (out / "metrics.json").is_file())  # an epoch is done: now stop it mid-run
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "resume with:" in err and "--resume auto" in err and f"--output-dir {out}" in err
    assert "Traceback" not in err
    saved = sorted((out / "checkpoints").glob("last_*.pt"), key=lambda p: int(p.stem.split("_")[-1]))
    done = metrics(out)
    # the stop's own checkpoint is at the iteration where it happened, past the last epoch end
    assert int(saved[-1].stem.split("_")[-1]) >= 4 * len(done)
    resumed = run_cli(
        *small_args(data_dir, out, "--epochs", str(len(done) + 1), "--resume", "auto", train=256, eval_=64)
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in metrics(out)] == list(range(1, len(done) + 2))


def test_unwritable_output_dir_is_a_clear_error(data_dir: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli(*small_args(data_dir, blocker / "run", "--epochs", "1", train=64, eval_=64))
    assert result.returncode == 1
    assert "cannot" in result.stderr and str(blocker) in result.stderr and "Traceback" not in result.stderr
