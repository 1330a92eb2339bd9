"""Loading a trained model back: run folders, final/best/last files, bad files, logits vs log-probabilities."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from mnist_ignite.artifacts.trained import LogProbs, find_model_file, load_trained, run_dir_of
from mnist_ignite.errors import CheckpointLoadError, UntrustedSpecError
from mnist_ignite.models.net import Net

from conftest import run_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: str) -> Path:
    """A real one-epoch run: final_model.pt, checkpoints/last_checkpoint_8.pt, checkpoints/best_model_1_*.pt."""
    out = tmp_path_factory.mktemp("trained") / "run"
    args = ["--data-dir", data_dir, "--output-dir", str(out), "--device", "cpu", "--epochs", "1"]
    result = run_cli(*args, "--max-train-samples", "512", "--max-eval-samples", "256", "--no-download")
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def _outputs(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)))


def test_every_kind_of_model_file_loads_the_same_weights(run: Path) -> None:
    final = load_trained(run)
    assert final.source == run / "final_model.pt" and final.run_dir == run
    assert final.spec == "seed" and final.parameters == 593_200 and not final.model.training
    (last,) = (run / "checkpoints").glob("last_checkpoint_*.pt")
    (best,) = (run / "checkpoints").glob("best_model_*.pt")
    for file in (last, best):
        other = load_trained(file)
        assert other.run_dir == run
        torch.testing.assert_close(_outputs(other.model), _outputs(final.model), atol=0, rtol=0)


def test_run_folder_without_final_model_uses_the_latest_checkpoint(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("final_model.pt", "best_model_*"))
    assert find_model_file(copy).name.startswith("last_checkpoint_")
    for stale in (copy / "checkpoints").glob("*.pt"):
        stale.unlink()
    with pytest.raises(CheckpointLoadError, match="holds no trained model"):
        find_model_file(copy)
    assert run_dir_of(copy / "checkpoints" / "x.pt") == copy


def test_bad_files_give_clear_errors(run: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointLoadError, match="no such file"):
        load_trained(tmp_path / "missing.pt")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointLoadError, match="damaged or not a PyTorch file"):
        load_trained(text)
    numbers = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "lr": 0.1}, numbers)
    with pytest.raises(CheckpointLoadError, match="not an mnist-ignite model or checkpoint"):
        load_trained(numbers)
    foreign = tmp_path / "foreign.pt"
    torch.save({"meta": {"format": "someone-else/2"}, "model": Net().state_dict()}, foreign)
    with pytest.raises(CheckpointLoadError, match="not an mnist-ignite checkpoint"):
        load_trained(foreign)
    other = tmp_path / "other.pt"
    torch.save(nn.Linear(784, 10).state_dict(), other)
    with pytest.raises(CheckpointLoadError, match="does not hold weights of model 'seed'"):
        load_trained(other)


def test_a_model_this_install_cannot_build_is_named(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(model="no_such_package.models:Missing", model_args={"width": 8})
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(UntrustedSpecError, match=r"config.json asks to import 'no_such_package\.models:Missing'"):
        load_trained(copy)  # a file never makes this tool import code on its own
    with pytest.raises(CheckpointLoadError, match=r"no_such_package\.models:Missing"):
        load_trained(copy, trust=True)


def test_log_probs_from_logits_and_from_log_probabilities() -> None:
    net = Net().eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(LogProbs(net)(x), net(x))  # log_softmax of log-probabilities: unchanged
        logits = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        out = LogProbs(logits)(x)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))
    assert out.dtype == torch.float32 and out.shape == (3, 10)
