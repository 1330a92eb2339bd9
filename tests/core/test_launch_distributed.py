"""Data-parallel runs through ignite.distributed: 2 CPU processes with gloo."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_ignite.core.data import TensorEvalLoader, load_mnist
from mnist_ignite.core.device import resolve_precision
from mnist_ignite.core.engines import create_evaluator
from mnist_ignite.models.net import Net

from conftest import ROOT, metrics, run_cli, small_args

TWO = ("--nproc-per-node", "2", "--backend", "gloo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(data_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    result = run_cli(*small_args(data_dir, out, "--epochs", "1", *TWO, train=1024, eval_=512))
    assert result.returncode == 0, result.stderr
    return out


def test_two_processes_write_one_history_and_one_model(two_process_run: Path) -> None:
    rows = metrics(two_process_run)
    assert len(rows) == 1 and rows[0]["epoch"] == 1
    assert (two_process_run / "final_model.pt").is_file()
    assert len(list((two_process_run / "checkpoints").glob("last_*.pt"))) == 1


def test_reduced_test_accuracy_equals_a_single_process_evaluation(two_process_run: Path, data_dir: str) -> None:
    net = Net().to(memory_format=torch.channels_last)
    net.load_state_dict(torch.load(two_process_run / "final_model.pt", weights_only=True))  # no "module." prefix
    test = load_mnist(data_dir, train=False, download=False)
    cpu = torch.device("cpu")
    evaluator = create_evaluator(net, cpu, resolve_precision("auto", cpu), channels_last=True)  # as the run did
    accuracy = evaluator.run(TensorEvalLoader(test.data[:512], test.targets[:512], 1000, cpu)).metrics["accuracy"]
    assert metrics(two_process_run)[0]["test_acc"] == pytest.approx(100 * accuracy, abs=1e-9)


def test_a_two_process_checkpoint_resumes_in_one_process(two_process_run: Path, data_dir: str, tmp_path: Path) -> None:
    (ckpt,) = (two_process_run / "checkpoints").glob("last_*.pt")
    out = tmp_path / "single"
    result = run_cli(*small_args(data_dir, out, "--epochs", "2", "--resume", str(ckpt), train=1024, eval_=512))
    assert result.returncode == 0, result.stderr
    assert [r["epoch"] for r in metrics(out)] == [1, 2]


def test_a_one_process_checkpoint_resumes_in_two(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "grow"
    assert run_cli(*small_args(data_dir, out, "--epochs", "1", train=1024, eval_=256)).returncode == 0
    result = run_cli(*small_args(data_dir, out, "--epochs", "2", "--resume", "auto", *TWO, train=1024, eval_=256))
    assert result.returncode == 0, result.stderr
    assert [r["epoch"] for r in metrics(out)] == [1, 2]


def test_the_same_script_runs_under_torchrun(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "torchrun"
    args = small_args(data_dir, out, "--epochs", "1", "--backend", "gloo", train=512, eval_=256)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),
            str(ROOT / "examples" / "train_mnist.py"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert len(metrics(out)) == 1 and (out / "final_model.pt").is_file()
    assert result.stdout.count("epoch   1/1") == 1  # rank 0 alone prints
