"""``--model``: bad models refused in one line (exit 2) before any data is read; logits and log-probabilities
both train; a model file's run checkpoints, and resumes once the user trusts the file it names."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mnist_ignite.cli import main
from mnist_ignite.core.files import load_tensors

from conftest import ROOT, metrics, run_cli, small_args

SMALLNET = f"{ROOT / 'examples' / 'custom_model.py'}:SmallNet"

MODELS = '''
import torch
import torch.nn.functional as F
from torch import nn


class Logits(nn.Module):
    """A linear classifier that returns raw scores."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)  # the same weights in both classes: the two runs must agree
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class LogProbabilities(Logits):
    def forward(self, x):
        return F.log_softmax(super().forward(x), dim=1)


class FiveClasses(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 5)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Pair(Logits):
    def forward(self, x):
        return super().forward(x), x


class NoFlatten(Logits):
    def forward(self, x):
        return self.fc(x)  # (B, 1, 28, 28) into Linear(784, ...): a shape error


class NaNs(Logits):
    def forward(self, x):
        return super().forward(x) * float("nan")


class NoParameters(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10]


class Raises(nn.Module):
    def __init__(self, size=3):
        super().__init__()
        raise RuntimeError(f"cannot make size {size}")


def not_a_module():
    return "a string"
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "zoo.py"
    path.write_text(textwrap.dedent(MODELS))
    (path.parent / "broken.py").write_text("raise ImportError('no such dependency: fancy_layers')\n")
    return path


def _refused(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in this process; return its one error line after checking exit 2, no data, no folder."""
    missing, out = tmp_path / "no-mnist-here", tmp_path / "out"
    code = main([*argv, *small_args(str(missing), out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("mnist-ignite: error: "), err
    # a data error would have been exit 1, "MNIST file missing"; the run folder was never claimed
    assert not missing.exists() and not out.exists()
    return err.strip()


@pytest.mark.parametrize(
    ("spec", "args", "expected"),
    [
        ("sed", [], "unknown model 'sed' (did you mean seed?); available: seed"),
        ("no_such_package.nets:Net", [], "model 'no_such_package.nets:Net': cannot import no_such_package.nets"),
        ("{dir}/missing.py:Net", [], "model '{dir}/missing.py:Net': file not found"),
        ("{dir}/broken.py:Net", [], "cannot import {dir}/broken.py: ImportError: no such dependency: fancy_layers"),
        ("{zoo}:Nope", [], "model '{zoo}:Nope': {zoo} has no attribute 'Nope'"),
        ("{zoo}:Raises", [], "model '{zoo}:Raises' could not be built: RuntimeError: cannot make size 3"),
        ("{zoo}:not_a_module", [], "model '{zoo}:not_a_module' built a str, not a torch.nn.Module"),
        (
            "{zoo}:FiveClasses",
            [],
            "model '{zoo}:FiveClasses' must map (B, 1, 28, 28) to (B, 10) scores; it returned (2, 5) for B=2",
        ),
        ("{zoo}:Pair", [], "must map (B, 1, 28, 28) to (B, 10) scores; it returned tuple for B=2"),
        (
            "{zoo}:NoFlatten",
            [],
            "model '{zoo}:NoFlatten' failed on a (2, 1, 28, 28) batch: RuntimeError: ",  # torch's words vary
        ),
        ("{zoo}:NaNs", [], "model '{zoo}:NaNs' returns NaN/Inf on a blank batch"),
        ("{zoo}:NoParameters", [], "model '{zoo}:NoParameters' has no parameters to train"),
        (
            SMALLNET,
            ["--model-arg", "depth=3"],
            f"model '{SMALLNET}' has no parameter depth (its parameters: width, dropout)",
        ),
        (SMALLNET, ["--model-arg", "sed=1"], "has no parameter sed (its parameters: width, dropout)"),
        ("seed", ["--model-arg", "width=8"], "model 'seed' has no parameter width (its parameters: none)"),
        (SMALLNET, ["--model-arg", "width=-1"], "could not be built: ValueError: width must be >= 2"),
        ("{zoo}:Raises", ["--model-arg", "size=4"], "could not be built: RuntimeError: cannot make size 4"),
    ],
)
def test_a_bad_model_is_one_line_naming_it_before_any_data(
    models: Path, spec: str, args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill = {"zoo": models, "dir": models.parent}
    line = _refused(["--model", spec.format(**fill), *args], tmp_path, capsys)
    assert expected.format(**fill) in line


def test_near_miss_setting_name_in_a_model_arg_is_a_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--sed 3`` (a core flag misspelt) is told apart from ``--model-arg``."""
    missing = tmp_path / "no-mnist-here"
    assert main(["--sed", "3", *small_args(str(missing), tmp_path / "out")]) == 2
    assert "unknown option --sed (did you mean --seed?)" in capsys.readouterr().err
    assert not missing.exists()


def test_a_model_too_large_for_the_device(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Weights, gradients and momentum (3 copies: 7.1 MB for the seed Net) against 4 MB free."""
    monkeypatch.setattr("mnist_ignite.models.registry._free_bytes", lambda device: 4 * 2**20)
    line = _refused(["--model", "seed"], tmp_path, capsys)
    assert "model 'seed' is too large for cpu" in line and "with gradients and momentum" in line


def test_a_batch_whose_activations_do_not_fit_is_refused_before_any_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--batch-size 10,000,000 is capped at the 512 training images, whose activations (~0.5 MB each for the
    Net) need ~320 MiB against 100 MiB free: refused with what fits, not the kernel's OOM kill mid-epoch."""
    monkeypatch.setattr("mnist_ignite.models.registry._free_bytes", lambda device: 100 * 2**20)
    line = _refused(["--batch-size", "10000000"], tmp_path, capsys)
    assert line.startswith("mnist-ignite: error: --batch-size 10,000,000 (capped at the training images): ")
    assert "a training batch of 512 images needs ~" in line and "of activations per image" in line
    fits = int(line.rsplit("about ", 1)[1].split()[0].replace(",", ""))
    assert 100 < fits < 200  # (100 MiB / 1.25 - 7 MiB of weights, gradients, momentum) / ~0.5 MB


def test_saved_bytes_per_image_is_what_autograd_keeps_per_image() -> None:
    import torch
    from torch import nn

    from mnist_ignite.models.net import Net
    from mnist_ignite.models.registry import check_model, saved_bytes_per_image

    per_image = saved_bytes_per_image(Net())
    assert 0.4e6 < per_image < 0.6e6  # a real step's peak RSS measured 0.55 MB per image
    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    assert saved_bytes_per_image(linear) == 784 * 4  # the input the matmul keeps for its weight gradient
    net = Net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert check_model(net, "seed", torch.device("cpu"), batch=64) == "log-probabilities"
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training  # left as it was


def test_logits_and_log_probabilities_both_train_the_same(models: Path, data_dir: str, tmp_path: Path) -> None:
    """Cross-entropy of logits = nll of their log_softmax: the same weights give the same run either way."""
    rows = {}
    for name in ("Logits", "LogProbabilities"):
        out = tmp_path / name
        assert main(small_args(data_dir, out, "--model", f"{models}:{name}", "--epochs", "2", "--no-progress")) == 0
        rows[name] = metrics(out)
    for a, b in zip(rows["Logits"], rows["LogProbabilities"], strict=True):
        # equal up to the rounding of the bf16/fp32 autocast the run picks (a wrong loss would be far off)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=2e-3)
        assert a["test_loss"] == pytest.approx(b["test_loss"], abs=2e-3)
        assert abs(a["test_acc"] - b["test_acc"]) <= 100 / 256  # at most one test image apart
    first, last = rows["Logits"][0], rows["Logits"][-1]
    assert last["train_loss"] < first["train_loss"] and last["test_acc"] > 60  # it learned


def test_a_model_file_trains_checkpoints_and_resumes_once_trusted(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "small"
    first = run_cli(
        *small_args(data_dir, out, "--model", SMALLNET, "--epochs", "1", train=2048), env={"OMP_NUM_THREADS": "1"}
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert "model: SmallNet, 9,762 parameters" in first.stdout
    checkpoint = load_tensors(next((out / "checkpoints").glob("last_*.pt")))
    assert "features.0.0.weight" in checkpoint["model"]  # SmallNet's weights, not the seed Net's

    # the run's config.json names code to import: used only when the user says so
    refused = run_cli(*small_args(data_dir, out, "--epochs", "2", "--resume", "auto", train=2048))
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"asks to import {SMALLNET!r}" in refused.stderr and "--trust-code" in refused.stderr
    resumed = run_cli(*small_args(data_dir, out, "--epochs", "2", "--resume", "auto", "--trust-code", train=2048))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming a run of model {SMALLNET}" in resumed.stdout
    assert [r["epoch"] for r in metrics(out)] == [1, 2]
    assert json.loads((out / "config.json").read_text())["model"] == SMALLNET

    other = run_cli(
        *small_args(
            data_dir,
            out,
            "--epochs",
            "3",
            "--resume",
            "auto",
            "--model",
            SMALLNET,
            "--model-arg",
            "width=8",
            train=2048,
        )
    )
    assert other.returncode == 1  # the run failed on its checkpoint (not a usage error)
    # the settings compare first, all at once: the model's arguments differ
    assert other.stderr.count("\n") == 1 and "other settings (model-args {} -> {'width': 8})" in other.stderr
