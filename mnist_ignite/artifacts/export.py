"""Shipping a trained model: ONNX, TorchScript or a torch.export ExportedProgram, proven equal.

The exported model takes normalized images (B, 1, 28, 28) with any batch size B and returns
log-probabilities (B, 10), like the checkpoint. :func:`check_parity` runs an export (loaded back
the way a user would load it: ONNX Runtime, ``torch.jit.load``, ``torch.export.load``) beside the
PyTorch model. torch loads inside the functions: ``FORMATS`` serves ``export --help`` without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_ignite.artifacts.formats import FORMATS, _quiet
from mnist_ignite.errors import ExportError

if TYPE_CHECKING:
    import torch

    from mnist_ignite.artifacts.formats import Classifier
    from mnist_ignite.artifacts.trained import LogProbs

__all__ = ["FORMATS", "ExportError", "Parity", "check_parity", "export_model", "onnx_opsets"]


def onnx_opsets() -> range:
    """The ONNX opsets the installed onnx package knows (an ``--opset`` outside them is a usage error)."""
    _require("onnx")
    import onnx

    return range(7, onnx.defs.onnx_opset_version() + 1)


def _written_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _require(*modules: str) -> None:
    from mnist_ignite.errors import MissingExtraError

    for name in modules:
        try:
            __import__(name)
        except ImportError:
            raise MissingExtraError(f"ONNX export needs {name}: pip install 'mnist-ignite[export]'") from None


def export_model(model: LogProbs, fmt: str, path: Path, *, opset: int | None = None, dynamo: bool = True) -> None:
    """Write ``model`` (on the CPU, eval mode) to ``path`` in format ``fmt`` with a dynamic batch axis."""
    import torch

    example = torch.zeros(2, 1, 28, 28)  # batch 2: a batch of 1 would be specialized as a constant
    batch = torch.export.Dim("batch")
    with torch.no_grad(), _quiet():
        if fmt == "onnx":
            _require("onnx", "onnxruntime", *(("onnxscript",) if dynamo else ()))
            names = {"input_names": ["images"], "output_names": ["log_probs"], "opset_version": opset}
            if dynamo:
                program = torch.onnx.export(
                    model, (example,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False, **names
                )
                program.save(path, external_data=False)
            else:
                axes = {"images": {0: "batch"}, "log_probs": {0: "batch"}}
                torch.onnx.export(model, (example,), path, dynamo=False, dynamic_axes=axes, **names)
            if opset is not None and (written := _written_opset(path)) != opset:
                raise ExportError(f"the exporter could not convert this model to opset {opset} (it wrote {written})")
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(model, example), path)
        elif fmt == "exported-program":
            torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), path)
        else:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


@dataclass
class Parity:
    """How the export's outputs compare with the PyTorch model's."""

    samples: int
    max_abs_diff: float
    mismatches: int
    batch_sizes: tuple[int, ...]

    def ok(self, tolerance: float) -> bool:
        return self.max_abs_diff <= tolerance and self.mismatches == 0

    def __str__(self) -> str:
        sizes = "/".join(map(str, self.batch_sizes))
        return (
            f"max |difference| {self.max_abs_diff:.3g} on {self.samples:,} test images (batches of {sizes}), "
            f"{self.samples - self.mismatches:,}/{self.samples:,} predictions identical"
        )


def check_parity(reference: Classifier, exported: Classifier, images: torch.Tensor) -> Parity:
    """Run both on normalized ``images`` (N, 1, 28, 28): all but the last image in one batch, the last alone."""
    import torch

    cuts = [slice(0, len(images) - 1), slice(len(images) - 1, len(images))] if len(images) > 1 else [slice(0, 1)]
    with torch.no_grad():
        ref = torch.cat([reference(images[c]) for c in cuts])
        out = torch.cat([exported(images[c]) for c in cuts])
    if out.shape != ref.shape:
        raise ValueError(f"the export returns shape {tuple(out.shape)}, the model {tuple(ref.shape)}")
    diff = float((out - ref).abs().max())
    mismatches = int((out.argmax(1) != ref.argmax(1)).sum())
    return Parity(len(images), diff, mismatches, tuple(c.stop - c.start for c in cuts))
