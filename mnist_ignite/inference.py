"""Using a trained model on new images: a classifier from a checkpoint, a run folder or an ``.onnx`` file.

A *classifier* is a function from normalized images (B, 1, 28, 28) to log-probabilities (B, 10),
whatever runs it (the PyTorch model, or ONNX Runtime for an exported file, so the ONNX file alone
is enough to ship). ``mnist-ignite predict`` and the export parity check use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mnist_ignite.core.data import normalize
from mnist_ignite.core.files import CheckpointLoadError
from mnist_ignite.exporting import export_format, load_exported
from mnist_ignite.trained import load_trained

__all__ = ["Classifier", "MissingExtraError", "load_classifier", "onnx_classifier", "predict"]

Classifier = Callable[[torch.Tensor], torch.Tensor]  # normalized (B, 1, 28, 28) -> log-probabilities (B, 10)


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra."""


def onnx_classifier(path: str | os.PathLike) -> Classifier:
    """An ONNX model run by ONNX Runtime on the CPU; outputs made log-probabilities like a checkpoint's."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("running .onnx models needs onnxruntime: pip install 'mnist-ignite[export]'") from None
    path = Path(path)
    if not path.is_file():
        raise CheckpointLoadError(f"model not found: {path}")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types for damaged files
        reason = " ".join(str(err).split())[:300]
        raise CheckpointLoadError(f"{path} is not a loadable ONNX model: {reason}") from None
    (first,) = session.get_inputs()[:1]
    fixed = first.shape[0] if isinstance(first.shape[0], int) else None

    def run(x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().float().numpy()
        chunks = [arr] if fixed is None else [arr[i : i + fixed] for i in range(0, len(arr), fixed)]
        out = np.concatenate([session.run(None, {first.name: c})[0] for c in chunks])
        return F.log_softmax(torch.from_numpy(out).float(), dim=1)

    return run


def load_classifier(path: str, device: torch.device) -> tuple[Classifier, str]:
    """A classifier for ``path`` (a run folder, a model file, or an ONNX/TorchScript/.pt2 export), described."""
    fmt = export_format(path)
    if fmt == "onnx":
        return onnx_classifier(path), f"{path} (ONNX Runtime)"
    if fmt is not None:  # TorchScript or ExportedProgram, as mnist-ignite export wrote it: on the CPU
        return load_exported(fmt, Path(path)), f"{path} ({fmt})"
    trained = load_trained(path, device)

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return trained.model(x.to(device)).float().cpu()

    return run, trained.describe()


def predict(classifier: Classifier, digits: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Log-probabilities (N, 10) of MNIST-format images ``digits`` (N, 28, 28) in [0, 1]."""
    x = normalize(digits.unsqueeze(1))
    return torch.cat([classifier(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
