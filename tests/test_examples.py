from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from mnist_ignite.cli import main
from mnist_ignite.core.files import load_tensors

from conftest import ROOT, metrics, small_args

EXAMPLE = ROOT / "examples" / "custom_handler.py"


def test_custom_handler_example_runs(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "ex"
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--data-dir",
            data_dir,
            "--epochs",
            "1",
            "--max-train-samples",
            "1024",
            "--max-eval-samples",
            "256",
            "--device",
            "cpu",
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    with (out / "grad_norms.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [10]  # 16 iterations, every 10
    assert float(rows[0]["grad_norm"]) > 0


def test_same_class_loads_on_the_main_cli_and_keeps_its_state(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    spec = f"{EXAMPLE}:GradNormLogger"
    assert main(small_args(data_dir, out, "--epochs", "1", "--handler", spec, "--grad-every", "2", train=256)) == 0
    state = load_tensors(next((out / "checkpoints").glob("last_*.pt")))
    assert state["plugins"]["grad_norm"] == {"logged": 2}
    args = small_args(
        data_dir, out, "--epochs", "2", "--handler", spec, "--grad-every", "2", "--resume", "auto", train=256
    )
    assert main(args) == 0
    state = load_tensors(max((out / "checkpoints").glob("last_*.pt"), key=lambda p: int(p.stem.split("_")[-1])))
    assert state["plugins"]["grad_norm"] == {"logged": 4}


def test_custom_model_example_trains_its_smallnet(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "small"
    example = ROOT / "examples" / "custom_model.py"
    result = subprocess.run(
        [sys.executable, str(example), *small_args(data_dir, out, "--epochs", "1", "--model-arg", "width=8")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "custom_model.py:SmallNet" in result.stdout and "model: SmallNet, 2,550 parameters" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["model_args"]) == (f"{example}:SmallNet", {"width": 8})
    assert len(metrics(out)) == 1
