"""``mnist-ignite lr-find``: training options pass through, lr_find.png/json written, bad input in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image
import pytest

from mnist_ignite.cli import main as cli

from conftest import ROOT, run_cli, small_args


def main(argv: list[str]) -> int:
    """``mnist-ignite lr-find ARGV`` in this process, its errors mapped to exit codes by the dispatcher."""
    return cli(["lr-find", *argv])


SMALLNET = f"{ROOT / 'examples' / 'custom_model.py'}:SmallNet"


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_writes_the_curve_and_prints_the_suggestion(data_dir: str, tmp_path: Path, pipeline: str) -> None:
    out = tmp_path / "lrf"
    args = small_args(data_dir, out, "--model", SMALLNET, "--model-arg", "width=8", "--batch-size", "32")
    args += ["--pipeline", pipeline, "--num-workers", "0", "--seed", "3"]
    result = run_cli("lr-find", "--num-iter", "30", "--end-lr", "100", *args, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    found = json.loads((out / "lr_find.json").read_text())
    printed = re.search(r"^suggested lr: (\S+)  \(fastai's valley rule; (\d+) iterations", result.stdout, re.M)
    assert printed, result.stdout
    assert float(printed.group(1)) == pytest.approx(found["suggestion"], rel=5e-3)
    assert int(printed.group(2)) == len(found["lrs"]) == len(found["losses"])
    assert found["start_lr"] == 1e-5 and found["end_lr"] == 100 and found["num_iter"] == 30
    assert found["lrs"][0] < found["suggestion"] < found["lrs"][-1]
    assert found["settings"] == {
        "model": SMALLNET,
        "model_args": {"width": 8},
        "batch_size": 32,
        "momentum": 0.9,
        "pipeline": pipeline,
        "precision": "auto",
        "seed": 3,
        "max_train_samples": 512,
    }
    image = matplotlib.image.imread(out / "lr_find.png")
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert f"wrote {out / 'lr_find.png'}, {out / 'lr_find.json'}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["lr_find.json", "lr_find.png"]  # nothing of a training run


def test_the_same_seed_gives_the_same_curve(data_dir: str, tmp_path: Path) -> None:
    """The model is built after seeding, as a training run builds it (it was built before: another curve each time)."""
    curves = []
    for i in range(2):
        out = tmp_path / f"lrf{i}"
        assert main(["--num-iter", "6", *small_args(data_dir, out, "--batch-size", "16", "--seed", "5")]) == 0
        found = json.loads((out / "lr_find.json").read_text())
        assert found["lrs"][0] == pytest.approx(1e-5) and len(found["lrs"]) <= 6  # the first lr is --start-lr
        curves.append(found["losses"])
    assert curves[0] == curves[1]


def test_help_names_its_own_options_and_points_to_the_training_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--num-iter N" in out and "(default: 200)" in out and "Every training option works too" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr (1) must be below --end-lr (0.1)"),
        (["--num-iter", "0"], "argument --num-iter: must be a finite number > 0, got 0"),
        (["--epocs", "2"], "unknown option --epocs (did you mean --epochs?)"),
        (["--batch-size", "0"], "must be > 0"),
        (["--model", "sed"], "unknown model 'sed' (did you mean seed?)"),
        (["--model", SMALLNET, "--model-arg", "depth=3"], "has no parameter depth (its parameters: width, dropout)"),
    ],
)
def test_usage_errors_are_one_line_exit_2_and_read_no_data(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    missing = tmp_path / "no-data"
    code = main(
        [*args, "--data-dir", str(missing), "--no-download", "--device", "cpu", "--output-dir", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    first, *rest = err.splitlines()
    assert first.startswith("mnist-ignite") and message in first
    assert rest in ([], ["See 'mnist-ignite --help'."])  # the training parser's pointer to its help
    assert not missing.exists() and not (tmp_path / "o").exists()


@pytest.mark.integration  # starts a process
def test_missing_data_fails_the_run_in_one_line(tmp_path: Path) -> None:
    result = run_cli("lr-find", *small_args(str(tmp_path / "no-data"), tmp_path / "o"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mnist-ignite: error: ")
    assert "MNIST" in result.stderr
    assert not (tmp_path / "o").exists()  # no empty run folder left behind
