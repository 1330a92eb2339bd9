"""Using a trained model on new images: a classifier from a checkpoint, a run folder or an ``.onnx`` file.

A *classifier* is a function from normalized images (B, 1, 28, 28) to log-probabilities (B, 10),
whatever runs it (the PyTorch model, or ONNX Runtime for an exported file, so the ONNX file alone
is enough to ship). ``mnist-ignite predict`` and the export parity check use it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mnist_ignite.artifacts.formats import Classifier, export_format, load_exported, onnx_classifier
from mnist_ignite.artifacts.trained import load_trained
from mnist_ignite.core.data import normalize

__all__ = ["Classifier", "load_classifier", "onnx_classifier", "predict"]


def load_classifier(path: str, device: torch.device, trust: bool = False) -> tuple[Classifier, str]:
    """A classifier for ``path`` (a run folder, a model file, or an ONNX/TorchScript/.pt2 export), described."""
    fmt = export_format(path)
    if fmt == "onnx":
        return onnx_classifier(path), f"{path} (ONNX Runtime)"
    if fmt is not None:  # TorchScript or ExportedProgram, as mnist-ignite export wrote it: on the CPU
        return load_exported(fmt, Path(path)), f"{path} ({fmt})"
    trained = load_trained(path, device, trust=trust)

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return trained.model(x.to(device)).float().cpu()

    return run, trained.describe()


def predict(classifier: Classifier, digits: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Log-probabilities (N, 10) of MNIST-format images ``digits`` (N, 28, 28) in [0, 1]."""
    x = normalize(digits.unsqueeze(1))
    return torch.cat([classifier(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
