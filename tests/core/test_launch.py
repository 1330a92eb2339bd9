"""Crash-exact resume, clean interrupts (real processes and signals)."""

from __future__ import annotations

import json
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


STOPPER = '''
import os, signal
from ignite.engine import Events

def sigterm_in_evaluation(ctx):
    """Sends SIGTERM to this process while epoch 1 is being evaluated."""
    ctx.evaluator.add_event_handler(
        Events.STARTED, lambda e: ctx.trainer.state.epoch == 1 and os.kill(os.getpid(), signal.SIGTERM)
    )

def double_sigint(ctx):
    """Two SIGINTs in a row, mid-epoch: the second one stops at once."""
    def twice(engine):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2), twice)
'''


@pytest.fixture()
def stopper(tmp_path: Path) -> Path:
    path = tmp_path / "stopper.py"
    path.write_text(STOPPER)
    return path


def test_sigterm_during_evaluation_stops_at_that_epoch_end(stopper: Path, data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = run_cli(
        *small_args(data_dir, out, "--epochs", "3", "--handler", f"{stopper}:sigterm_in_evaluation", train=128)
    )
    assert result.returncode == 143, result.stderr
    assert [r["epoch"] for r in metrics(out)] == [1]  # epoch 2 never ran
    assert sorted(p.name for p in (out / "checkpoints").glob("last_*.pt")) == ["last_checkpoint_2.pt"]
    assert not (out / "final_model.pt").exists() and "Traceback" not in result.stderr


def test_a_second_sigint_stops_at_once_and_says_nothing_was_saved(stopper: Path, data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "twice"
    result = run_cli(*small_args(data_dir, out, "--epochs", "2", "--handler", f"{stopper}:double_sigint", train=256))
    assert result.returncode == 130
    assert "without saving" in result.stderr and "state saved" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_diverging_run_with_default_handlers_exits_1_without_a_final_model(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "diverged"
    result = run_cli(*small_args(data_dir, out, "--epochs", "1", "--lr", "1e6", train=256))
    assert result.returncode == 1
    assert "NaN/Inf" in result.stderr and "Traceback" not in result.stderr
    assert not (out / "final_model.pt").exists()
    # diverged within epoch 1, before any checkpoint: no pointing at an empty folder
    assert "No checkpoint was saved before it." in result.stderr and "last good checkpoint" not in result.stderr


def test_labels_out_of_range_are_a_data_error(data_dir: str, tmp_path: Path) -> None:
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (Path(data_dir) / "MNIST" / "raw").glob("*-ubyte"):
        (raw / f.name).symlink_to(f)
    labels = raw / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    labels.unlink()
    data[8 + 5] = 12  # the 6th training label
    labels.write_bytes(bytes(data))
    result = run_cli(*small_args(str(tmp_path / "data"), tmp_path / "out", "--epochs", "1", train=64))
    assert result.returncode == 1
    assert "label" in result.stderr and "12" in result.stderr and "Traceback" not in result.stderr


def test_resume_refuses_changed_settings_unless_forced(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(small_args(data_dir, out, "--epochs", "1", "--seed", "4", train=128)) == 0
    config = (out / "config.json").read_text()
    changed = run_cli(
        *small_args(data_dir, out, "--epochs", "2", "--resume", "auto", "--seed", "5", "--momentum", "0.5", train=128)
    )
    assert changed.returncode == 1
    assert "(seed 4 -> 5; momentum 0.9 -> 0.5)" in changed.stderr  # every difference, in one line
    assert (out / "config.json").read_text() == config  # nothing recorded for a run that did not happen
    schedule = run_cli(
        *small_args(
            data_dir, out, "--epochs", "2", "--resume", "auto", "--seed", "4", "--lr-schedule", "onecycle", train=128
        )
    )
    assert schedule.returncode == 1 and "lr-schedule 'step' -> 'onecycle'" in schedule.stderr
    same_iterations = run_cli(
        *small_args(data_dir, out, "--epochs", "2", "--resume", "auto", "--seed", "4", "--batch-size", "65", train=128)
    )
    assert same_iterations.returncode == 1 and "batch-size 64 -> 65" in same_iterations.stderr
    forced = run_cli(
        *small_args(data_dir, out, "--epochs", "2", "--resume", "auto", "--seed", "5", "--resume-force", train=128)
    )
    assert forced.returncode == 0, forced.stderr
    assert "resuming with changed settings: seed 4 -> 5" in forced.stderr


def test_resume_falls_back_past_a_damaged_newest_checkpoint(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(small_args(data_dir, out, "--epochs", "2", "--seed", "4", train=128)) == 0
    newest = out / "checkpoints" / "last_checkpoint_4.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    result = run_cli(*small_args(data_dir, out, "--epochs", "3", "--seed", "4", "--resume", "auto", train=128))
    assert result.returncode == 0, result.stderr
    assert "last_checkpoint_4.pt is damaged" in result.stderr and "trying the previous checkpoint" in result.stderr
    assert "resumed from" in result.stdout and "last_checkpoint_2.pt" in result.stdout
    assert [r["epoch"] for r in metrics(out)] == [1, 2, 3]


@pytest.mark.integration  # starts a process
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-workers", "1000"], "--num-workers: must be between 0 and"),
        (["--momentum", "2"], "--momentum: must be in [0, 1), got 2"),
        (["--warmup-iters", "-1"], "--warmup-iters: must be >= 0, got -1"),
        (["--repeat", "3", "--seeds", "3,4"], "--repeat and --seeds both choose the seeds"),
        (["--seeds", "1,1"], "must be distinct comma-separated seeds"),
        (["--seed", "-5"], "--seed: must be between 0 and 2**63 - 1"),
        (["--seed", str(10**23)], "--seed: must be between 0 and 2**63 - 1"),
        (["--epocs", "2"], "unknown option --epocs (did you mean --epochs?)"),
        (["--no-handler", "plot"], "unknown handler 'plot' (did you mean plots?)"),
        (
            ["--resume", "auto", "--no-handler", "checkpoint", "--output-dir", "x"],
            "--resume needs the checkpoint handler",
        ),
    ],
)
def test_bad_usage_is_one_short_line_and_exit_2(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "usage:" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_target_accuracy_stops_the_run_and_records_when(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "target"
    result = run_cli(*small_args(data_dir, out, "--epochs", "5", "--target-acc", "1", train=128, eval_=64))
    assert result.returncode == 0, result.stderr
    assert [r["epoch"] for r in metrics(out)] == [1]  # 1% is reached after the first epoch
    results = json.loads((out / "results.json").read_text())
    assert results["target_reached_epoch"] == 1 and 0 < results["target_reached_seconds"] < 600
    assert "target 1% reached at epoch 1" in result.stdout and "stopped early" not in result.stdout
    never = tmp_path / "never"
    assert main(small_args(data_dir, never, "--epochs", "1", "--target-acc", "100", train=128, eval_=64)) == 0
    assert json.loads((never / "results.json").read_text())["target_reached_epoch"] is None


def test_fast_dev_run_goes_through_every_handler_and_keeps_nothing(data_dir: str, tmp_path: Path) -> None:
    result = run_cli(
        "--data-dir", data_dir, "--device", "cpu", "--no-download", "--fast-dev-run", "--handler", "early_stopping",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "fast-dev-run passed: 1 training batch and 1 evaluation batch" in result.stdout
    assert "early_stopping" in result.stdout and "1 iteration per epoch" in result.stdout
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, nothing written here


def test_fast_dev_run_fails_loudly_on_a_broken_handler(data_dir: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(
        "from ignite.engine import Events\n"
        "def broken(ctx):\n"
        "    ctx.evaluator.add_event_handler(Events.COMPLETED, lambda e: e.state.metrics['nope'])\n"
    )
    result = run_cli("--data-dir", data_dir, "--device", "cpu", "--fast-dev-run", "--handler", f"{broken}:broken")
    assert result.returncode == 1 and "handler 'broken' failed in evaluator COMPLETED at broken.py:3" in result.stderr
    assert "KeyError: 'nope'" in result.stderr


def test_overfit_batches_learns_the_batches_it_is_shown(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "overfit"
    args = small_args(
        data_dir, out, "--epochs", "50", "--overfit-batches", "2", "--batch-size", "32", "--lr-schedule", "none"
    )
    assert main(args) == 0
    rows = metrics(out)
    assert rows[-1]["test_loss"] < 0.3 * rows[0]["test_loss"]  # evaluated on the very images it trained on
    assert rows[-1]["test_acc"] >= 95.0


TINY_MODEL = """
import torch.nn as nn

class Tiny(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)
        )

    def forward(self, x):
        return self.body(x)
"""


def test_lr_auto_runs_the_finder_and_records_its_suggestion(data_dir: str, tmp_path: Path) -> None:
    model = tmp_path / "tiny.py"
    model.write_text(TINY_MODEL)
    out = tmp_path / "auto"
    args = small_args(data_dir, out, "--epochs", "1", "--model", f"{model}:Tiny", "--lr", "auto", train=512, eval_=64)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    finder = json.loads((out / "lr_find.json").read_text())
    assert isinstance(config["lr"], float) and config["lr"] == pytest.approx(finder["suggestion"])
    assert f"--lr auto: using lr {config['lr']:.3g}" in result.stdout and (out / "lr_find.png").is_file()
    resumed = run_cli(*[a if a != "1" else "2" for a in args], "--resume", "auto")  # keeps the lr it was made with
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "config.json").read_text())["lr"] == config["lr"]


OUT_OF_MEMORY = """
import torch
from torch import nn

from mnist_ignite.testing import TinyNet


class Greedy(TinyNet):
    calls = 0

    def forward(self, x):
        if self.training:
            Greedy.calls += 1
            if Greedy.calls == 3:
                raise RuntimeError(
                    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                    "you tried to allocate 123456789 bytes. Error code 12 (Cannot allocate memory)"
                )
        return super().forward(x)
"""


def test_out_of_memory_mid_run_is_one_line_naming_the_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mnist_ignite.testing import fake_mnist

    models = tmp_path / "greedy.py"
    models.write_text(OUT_OF_MEMORY)
    data = fake_mnist(tmp_path / "data", train=256, test=64)
    args = small_args(str(data), tmp_path / "run", "--model", f"{models}:Greedy", "--epochs", "1")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("mnist-ignite: error: out of memory at iteration 3 (epoch 1) on cpu: [enforce fail at")
    assert err.rstrip().endswith("A smaller --batch-size (now 64) or --eval-batch-size (now 1000) fits")
