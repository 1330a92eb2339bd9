"""Export formats: recognised by their contents, loaded back as classifiers; a pickled payload never loads."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch

from mnist_ignite.artifacts.export import export_model
from mnist_ignite.artifacts.formats import check_exported_program, export_format, load_exported
from mnist_ignite.artifacts.trained import LogProbs
from mnist_ignite.core.files import save_torch
from mnist_ignite.errors import CheckpointLoadError
from mnist_ignite.testing import TinyNet


@pytest.fixture(scope="module")
def model() -> LogProbs:
    torch.manual_seed(0)
    return LogProbs(TinyNet()).eval()


@pytest.fixture(scope="module")
def exports(model: LogProbs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    paths = {"torchscript": folder / "m.torchscript.pt", "exported-program": folder / "m.pt2"}
    for fmt, path in paths.items():
        export_model(model, fmt, path)
    return paths


def test_formats_are_told_apart_by_content_not_by_name(exports: dict[str, Path], tmp_path: Path) -> None:
    for fmt, path in exports.items():
        renamed = tmp_path / f"{fmt}.bin"
        renamed.write_bytes(path.read_bytes())
        assert export_format(path) == export_format(renamed) == fmt
    checkpoint = tmp_path / "state.pt"
    save_torch(checkpoint, {"w": torch.zeros(1)})
    assert export_format(checkpoint) is None
    assert export_format(tmp_path / "anything.onnx") == "onnx"  # ONNX is protobuf: known by its name
    assert export_format(tmp_path / "missing.pt") is None


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
def test_an_export_gives_the_models_outputs_at_any_batch_size(
    fmt: str, model: LogProbs, exports: dict[str, Path]
) -> None:
    classifier = load_exported(fmt, exports[fmt])
    for batch in (1, 5):
        x = torch.randn(batch, 1, 28, 28)
        torch.testing.assert_close(classifier(x), model(x), atol=1e-5, rtol=0)


def test_an_untouched_exported_program_passes_the_check(exports: dict[str, Path]) -> None:
    check_exported_program(exports["exported-program"])  # raises on a pickled payload


def test_pickled_weights_flagged_use_pickle_are_checked_too(exports: dict[str, Path], tmp_path: Path) -> None:
    """A weights config can mark a weight as a pickle; torch then loads it with weights_only=False."""
    good = exports["exported-program"]
    hostile = tmp_path / "weights.pt2"
    payload = io.BytesIO()
    torch.save({"not": Path("a tensor")}, payload)  # refused by a weights-only load: a pathlib object
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(hostile, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("model_weights_config.json"):
                data = data.replace(b'"use_pickle": false', b'"use_pickle": true', 1)
            elif item.filename.endswith("weights/weight_0"):
                data = payload.getvalue()
            dst.writestr(item, data)
    with pytest.raises(CheckpointLoadError, match=r"its entry .*weight_0 holds objects that only a full unpickle"):
        check_exported_program(hostile)


def test_a_damaged_archive_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt2"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointLoadError, match="not a readable ExportedProgram archive"):
        check_exported_program(broken)
