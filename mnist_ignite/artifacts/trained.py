"""A trained model back from disk: a run folder, ``final_model.pt``, ``best_model_*.pt`` or a checkpoint.

The commands that use a trained model (``evaluate``, ``predict``, ``export``) all start here, so
they agree on which file a run folder means, which model it holds and what it outputs. Files are
read with :func:`mnist_ignite.core.files.load_tensors` (weights only: a file can never run code). The
model is rebuilt from the run's ``config.json`` (``model`` spec and ``model_args``, the seed's
``Net`` when absent) through :func:`build_model`, the one place that knows how models are made.
Whatever the model returns (logits or log-probabilities), :class:`LogProbs` turns it into
log-probabilities: ``log_softmax`` of log-probabilities is the identity.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mnist_ignite import models
from mnist_ignite.artifacts.formats import export_format
from mnist_ignite.core.files import load_tensors
from mnist_ignite.errors import CheckpointLoadError

__all__ = ["LogProbs", "TrainedModel", "build_model", "find_model_file", "load_trained", "run_dir_of"]

FORMAT_PREFIX = "mnist-ignite/"  # training checkpoints carry meta["format"] = "mnist-ignite/<version>"
DEFAULT_MODEL = "seed"
_LAST = re.compile(r"^last_checkpoint_(\d+)\.pt$")
_BEST = re.compile(r"^best_model_(\d+)_test_acc=([0-9.]+)\.pt$")


def build_model(spec: str, args: Mapping[str, Any]) -> nn.Module:
    """A fresh, untrained model for ``spec`` with constructor options ``args`` (the one place models are made)."""
    return models.build_model(spec, args)


class LogProbs(nn.Module):
    """Wraps a model so that it always returns fp32 log-probabilities of shape (B, 10)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.model(x).float(), dim=1)


@dataclass
class TrainedModel:
    """A loaded model in eval mode (outputs log-probabilities) and where it came from."""

    model: LogProbs
    source: Path
    spec: str = DEFAULT_MODEL
    model_args: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def describe(self) -> str:
        args = "".join(f" {k}={v}" for k, v in self.model_args.items())
        return f"{self.source} (model {self.spec}{args}, {self.parameters:,} parameters)"


def _latest(folder: Path, pattern: re.Pattern[str], key: int) -> Path | None:
    found = [(float(m.group(key)), p) for p in folder.glob("*.pt") if (m := pattern.match(p.name))]
    return max(found)[1] if found else None


def find_model_file(path: str | os.PathLike) -> Path:
    """The model file ``path`` means: itself, or for a run folder its ``final_model.pt``, else the
    latest ``checkpoints/last_checkpoint_*.pt`` (an unfinished run), else the best model."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointLoadError(f"no such file or folder: {path}")
    for candidate in (
        path / "final_model.pt",
        _latest(path / "checkpoints", _LAST, 1),
        _latest(path / "checkpoints", _BEST, 2),
        _latest(path, _LAST, 1),
        _latest(path, _BEST, 2),
    ):
        if candidate is not None and candidate.is_file():
            return candidate
    raise CheckpointLoadError(
        f"{path} holds no trained model (final_model.pt, checkpoints/last_checkpoint_*.pt or best_model_*.pt)"
    )


def run_dir_of(file: Path) -> Path | None:
    """The run folder a model file belongs to (the one with ``config.json``), if any."""
    for folder in (file.parent, file.parent.parent):
        if (folder / "config.json").is_file():
            return folder
    return None


def _model_spec(run_dir: Path | None, state: Any) -> tuple[str, dict[str, Any]]:
    """The model spec and its options: the checkpoint's own record, else the run's config.json, else the seed."""
    records: list[Any] = []
    if isinstance(state, Mapping) and isinstance(state.get("meta"), Mapping):
        meta = state["meta"]
        if "spec" in meta:  # meta["model"] is the class name; a spec is recorded as "spec"
            records.append({"model": meta["spec"], "model_args": meta.get("model_args")})
        records.append(state.get("settings"))
    if run_dir is not None:
        try:
            records.append(json.loads((run_dir / "config.json").read_text()))
        except (OSError, ValueError) as err:
            raise CheckpointLoadError(f"cannot read {run_dir / 'config.json'}: {err}") from None
    for record in records:
        if isinstance(record, Mapping) and record.get("model"):
            return str(record["model"]), dict(record.get("model_args") or {})
    return DEFAULT_MODEL, {}


def _weights(state: Any, file: Path) -> Mapping[str, torch.Tensor]:
    """The model weights of a training checkpoint, a ``{"model": ...}`` dict or a bare state_dict."""
    if isinstance(state, Mapping):
        meta = state.get("meta")
        if isinstance(meta, Mapping):
            if not str(meta.get("format", "")).startswith(FORMAT_PREFIX):
                raise CheckpointLoadError(f"{file} is not an mnist-ignite checkpoint (format {meta.get('format')!r})")
            return state["model"]
        if isinstance(state.get("model"), Mapping):
            return state["model"]
        if state and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            return state
    raise CheckpointLoadError(f"{file} is not an mnist-ignite model or checkpoint (no model weights in it)")


def load_trained(path: str | os.PathLike, device: torch.device | str = "cpu") -> TrainedModel:
    """Load the model that ``path`` (a model file or a run folder) holds, in eval mode on ``device``."""
    file = find_model_file(path)
    if fmt := export_format(file):
        raise CheckpointLoadError(
            f"{file} is an exported model ({fmt}), not a checkpoint: use its run folder or .pt model "
            "(predict also takes exported models)"
        )
    state = load_tensors(file)
    weights = _weights(state, file)
    run_dir = run_dir_of(file)
    spec, args = _model_spec(run_dir, state)
    try:
        model = build_model(spec, args)
    except Exception as err:  # a user's model can fail in any way (ModelError included); name it
        raise CheckpointLoadError(f"cannot rebuild model {spec!r} for {file}: {type(err).__name__}: {err}") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]
        raise CheckpointLoadError(f"{file} does not hold weights of model {spec!r}: {detail}") from None
    wrapped = LogProbs(model).to(device).eval()
    return TrainedModel(wrapped, file, spec, args, run_dir)
