"""Using a trained model on new images: a classifier from a checkpoint, a run folder or an ``.onnx`` file.

A *classifier* is a function from normalized images (B, 1, 28, 28) to log-probabilities (B, 10),
whatever runs it (the PyTorch model, or ONNX Runtime for an exported file, so the ONNX file alone
is enough to ship). :func:`load_model` is the one place a path becomes a classifier:
``mnist-ignite predict`` (through :func:`load_classifier`), ``serve`` and the export parity check
use it, so they agree on what a path means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_ignite.artifacts.formats import (
    Classifier,
    ModuleClassifier,
    export_format,
    load_exported,
    onnx_classifier,
    onnx_parameters,
)
from mnist_ignite.artifacts.trained import load_trained, run_dir_of
from mnist_ignite.core.data import normalize

__all__ = ["Classifier", "LoadedModel", "load_classifier", "load_model", "onnx_classifier", "predict"]


@dataclass(frozen=True)
class LoadedModel:
    """A classifier and what is known of it: what ran it, the file, its run folder, its spec and size."""

    classifier: Classifier
    described: str  # one line: the file, and the model or the runtime
    backend: str  # "pytorch", "onnxruntime", "torchscript" or "exported-program"
    source: Path  # the file loaded (a run folder's final_model.pt, ...)
    run_dir: Path | None = None  # the run it belongs to (its config.json, results.json), when found
    spec: str | None = None  # the model spec a checkpoint was rebuilt from
    parameters: int | None = None  # None where the format does not tell (ONNX without the onnx package)


def load_model(path: str, device: torch.device, trust: bool = False) -> LoadedModel:
    """The model ``path`` means (a run folder, a model file, or an ONNX/TorchScript/.pt2 export), loaded once.

    Exports run on the CPU (ONNX through ONNX Runtime); a checkpoint runs on ``device``. Files are read
    with weights only, and a spec naming code is rebuilt only with ``trust`` (see ``artifacts.trained``).
    """
    fmt = export_format(path)
    if fmt == "onnx":
        classifier = onnx_classifier(path)  # checks the file first
        file = Path(path)
        return LoadedModel(
            classifier, f"{path} (ONNX Runtime)", "onnxruntime", file, run_dir_of(file), None, onnx_parameters(file)
        )
    if fmt is not None:  # TorchScript or ExportedProgram, as mnist-ignite export wrote it: on the CPU
        file = Path(path)
        classifier = load_exported(fmt, file)
        count = None
        if isinstance(classifier, ModuleClassifier):
            count = sum(p.numel() for p in classifier.module.parameters())
        return LoadedModel(classifier, f"{path} ({fmt})", fmt, file, run_dir_of(file), None, count)
    trained = load_trained(path, device, trust=trust)

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return trained.model(x.to(device)).float().cpu()

    return LoadedModel(
        run, trained.describe(), "pytorch", trained.source, trained.run_dir, trained.spec, trained.parameters
    )


def load_classifier(path: str, device: torch.device, trust: bool = False) -> tuple[Classifier, str]:
    """A classifier for ``path`` (see :func:`load_model`), described in one line."""
    loaded = load_model(path, device, trust)
    return loaded.classifier, loaded.described


def predict(classifier: Classifier, digits: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Log-probabilities (N, 10) of MNIST-format images ``digits`` (N, 28, 28) in [0, 1]."""
    x = normalize(digits.unsqueeze(1))
    return torch.cat([classifier(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
