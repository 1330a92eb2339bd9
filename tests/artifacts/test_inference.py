"""A classifier from a run folder or an export gives the trained model's log-probabilities; predict batches them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mnist_ignite.artifacts.export import FORMATS, export_model
from mnist_ignite.artifacts.inference import load_classifier, predict
from mnist_ignite.artifacts.trained import TrainedModel, load_trained
from mnist_ignite.core.data import normalize, read_test_images
from mnist_ignite.errors import CheckpointLoadError, UntrustedSpecError
from mnist_ignite.testing import fake_mnist, run_plugin

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny run's folder (TinyNet, named by a module:Attr spec, so rebuilding it needs trust)."""
    out = tmp_path_factory.mktemp("inference") / "run"
    return run_plugin(handlers=["checkpoint", "history"], output_dir=out).output_dir


@pytest.fixture(scope="module")
def trained(run_dir: Path) -> TrainedModel:
    return load_trained(run_dir, trust=True)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """Synthetic test digits in [0, 1], (N, 28, 28): what predict takes."""
    x, _ = read_test_images(fake_mnist(tmp_path_factory.mktemp("digits"), train=1, test=20))
    return x.float() / 255


def _expected(trained: TrainedModel, digits: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return trained.model(normalize(digits.unsqueeze(1)))


def test_a_run_folder_needs_trust_then_classifies_like_its_model(
    run_dir: Path, trained: TrainedModel, digits: torch.Tensor
) -> None:
    """The run's config.json names code to import: refused without --trust-code, the model's own outputs with it."""
    with pytest.raises(UntrustedSpecError, match=r"mnist_ignite\.testing:TinyNet"):
        load_classifier(str(run_dir), CPU)
    classifier, described = load_classifier(str(run_dir), CPU, trust=True)
    assert described == trained.describe() and "final_model.pt" in described
    out = predict(classifier, digits)
    assert out.dtype == torch.float32 and out.shape == (20, 10)
    torch.testing.assert_close(out, _expected(trained, digits))
    torch.testing.assert_close(out.exp().sum(1), torch.ones(20))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize(("fmt", "runs_on"), [("onnx", "ONNX Runtime"), ("torchscript", "torchscript"),
                                              ("exported-program", "exported-program")])  # fmt: skip
def test_an_export_classifies_like_the_model_without_the_run(
    fmt: str, runs_on: str, trained: TrainedModel, digits: torch.Tensor, tmp_path: Path
) -> None:
    """The exported file alone is enough (no config.json beside it, no trust needed), recognized by its contents."""
    path = tmp_path / f"model{FORMATS[fmt]}"
    export_model(trained.model.cpu(), fmt, path, dynamo=False)
    classifier, described = load_classifier(str(path), CPU)
    assert described == f"{path} ({runs_on})"
    torch.testing.assert_close(predict(classifier, digits), _expected(trained, digits), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("n", "batch_size", "batches"), [(7, 3, [3, 3, 1]), (6, 3, [3, 3]), (2, 256, [2])])
def test_predict_normalizes_and_batches_in_order(
    n: int, batch_size: int, batches: list[int], trained: TrainedModel, digits: torch.Tensor
) -> None:
    """The classifier sees normalized (B, 1, 28, 28) chunks of at most batch_size; rows come back in input order."""
    seen: list[torch.Tensor] = []

    def classifier(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        with torch.no_grad():
            return trained.model(x)

    out = predict(classifier, digits[:n], batch_size=batch_size)
    assert [len(x) for x in seen] == batches
    torch.testing.assert_close(torch.cat(seen), (digits[:n].unsqueeze(1) - 0.1307) / 0.3081)
    torch.testing.assert_close(out, _expected(trained, digits[:n]))


def test_a_missing_model_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointLoadError, match="no such file or folder"):
        load_classifier(str(tmp_path / "nothing"), CPU)
    with pytest.raises(CheckpointLoadError, match="model not found"):
        load_classifier(str(tmp_path / "nothing.onnx"), CPU)
