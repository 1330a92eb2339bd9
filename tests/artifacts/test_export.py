"""Exporting a model: each format loads back on its own at any batch size, and the parity check really compares."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from mnist_ignite.artifacts.export import FORMATS, Parity, check_parity, export_model, onnx_opsets
from mnist_ignite.artifacts.trained import LogProbs
from mnist_ignite.core.data import normalize, read_test_images
from mnist_ignite.errors import MissingExtraError
from mnist_ignite.testing import TinyNet, fake_mnist


@pytest.fixture(scope="module")
def model() -> LogProbs:
    torch.manual_seed(0)
    return LogProbs(TinyNet()).eval()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """Normalized synthetic test digits (N, 1, 28, 28), as the parity check gets them."""
    x, _ = read_test_images(fake_mnist(tmp_path_factory.mktemp("digits"), train=1, test=40))
    return normalize(x.unsqueeze(1).float() / 255)


def _load_independently(fmt: str, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The file as a user without this project would load it."""
    if fmt == "onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    if fmt == "torchscript":
        return torch.jit.load(path)
    return torch.export.load(path).module()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize(
    ("fmt", "options"),
    [("onnx", {}), ("onnx", {"dynamo": False, "opset": 17}), ("torchscript", {}), ("exported-program", {})],
    ids=["onnx-dynamo", "onnx-legacy-17", "torchscript", "exported-program"],
)
def test_each_format_loads_back_and_matches_at_any_batch_size(
    fmt: str, options: dict, model: LogProbs, images: torch.Tensor, tmp_path: Path
) -> None:
    """The batch axis is dynamic (exported at batch 2, run at 1, 7 and 39): one file, no external data."""
    path = tmp_path / f"model{FORMATS[fmt]}"
    export_model(model, fmt, path, **options)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    exported = _load_independently(fmt, path)
    for batch in (1, 7):
        with torch.no_grad():
            torch.testing.assert_close(exported(images[:batch]), model(images[:batch]), atol=1e-4, rtol=0)
    parity = check_parity(model, exported, images)
    assert parity.ok(1e-4) and parity.samples == 40 and parity.batch_sizes == (39, 1), parity
    if fmt == "onnx":
        graph = onnx.load(str(path))
        assert [i.name for i in graph.graph.input] == ["images"] and [o.name for o in graph.graph.output] == [
            "log_probs"
        ]
        if "opset" in options:
            assert {o.domain: o.version for o in graph.opset_import}[""] == 17


def test_parity_check_catches_a_different_model(model: LogProbs, images: torch.Tensor) -> None:
    """A model that favours one class differs by more than any tolerance and changes predictions."""

    def favours_3(x: torch.Tensor) -> torch.Tensor:
        out = model(x).clone()
        out[:, 3] += 20.0
        return out

    same = check_parity(model, model, images)
    assert same.ok(0.0) and same.max_abs_diff == 0 and same.mismatches == 0
    other = check_parity(model, favours_3, images)
    assert not other.ok(1e-4) and other.max_abs_diff == pytest.approx(20.0, rel=1e-5) and other.mismatches > 0
    assert check_parity(model, model, images[:1]).batch_sizes == (1,)  # a single image: one batch of one
    with pytest.raises(ValueError, match=r"the export returns shape \(40, 9\), the model \(40, 10\)"):
        check_parity(model, lambda x: model(x)[:, :9], images)


@pytest.mark.parametrize(
    ("diff", "mismatches", "tolerance", "ok"),
    [(0.0, 0, 0.0, True), (1e-5, 0, 1e-4, True), (1e-4, 0, 1e-4, True), (2e-4, 0, 1e-4, False), (0.0, 1, 1e-4, False)],
)
def test_parity_ok_needs_both_the_tolerance_and_identical_predictions(
    diff: float, mismatches: int, tolerance: float, ok: bool
) -> None:
    assert Parity(1000, diff, mismatches, (999, 1)).ok(tolerance) is ok


def test_parity_reads_as_one_line() -> None:
    assert str(Parity(10_000, 3.2e-6, 2, (9999, 1))) == (
        "max |difference| 3.2e-06 on 10,000 test images (batches of 9999/1), 9,998/10,000 predictions identical"
    )


def test_unknown_format_and_missing_packages_write_nothing(
    model: LogProbs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="unknown format 'tflite'; choose from onnx, torchscript, exported-program"):
        export_model(model, "tflite", tmp_path / "m.tflite")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # how an uninstalled package looks to an import
    with pytest.raises(MissingExtraError, match=r"ONNX export needs onnxscript: pip install 'mnist-ignite\[export\]'"):
        export_model(model, "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnx_opsets_are_what_the_installed_onnx_knows() -> None:
    opsets = onnx_opsets()
    assert opsets.start == 7 and opsets[-1] == onnx.defs.onnx_opset_version() and 17 in opsets
