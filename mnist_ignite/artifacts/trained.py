"""A trained model back from disk: a run folder, ``final_model.pt``, ``best_model_*.pt`` or a checkpoint.

The commands that use a trained model (``evaluate``, ``predict``, ``export``, ``serve``) all start
here, so they agree on which file a run folder means, which model it holds and what it outputs.
Files are read with weights only (:func:`mnist_ignite.core.files.load_tensors`): a file can never
run code. The model is rebuilt from the checkpoint's own record or the run's ``config.json``
(``model`` spec and ``model_args``; the seed's ``Net`` when absent) through
:func:`~mnist_ignite.models.registry.build_model` — and only when that spec is trusted: a spec that
imports a module or a file (``module:Attr``, ``file.py:Attr``) read from a file needs
``--trust-code``, since a tampered file could name any code. Whatever the model returns (logits or
log-probabilities), :class:`LogProbs` turns it into log-probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mnist_ignite.artifacts.formats import export_format
from mnist_ignite.core.checkpoint import FORMAT, checkpoint_dir, find_best, find_checkpoints, model_record
from mnist_ignite.core.files import load_tensors
from mnist_ignite.core.rundir import CONFIG, FINAL_MODEL, read_run_config
from mnist_ignite.errors import CheckpointLoadError
from mnist_ignite.models.registry import build_model, require_trusted

__all__ = ["LogProbs", "TrainedModel", "find_model_file", "load_trained", "run_dir_of"]

DEFAULT_MODEL = "seed"


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


def find_model_file(path: str | os.PathLike) -> Path:
    """The model file ``path`` means: itself, or for a run folder its ``final_model.pt``, else the
    latest ``checkpoints/last_checkpoint_*.pt`` (an unfinished run), else the best model."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointLoadError(f"no such file or folder: {path}")
    inside = checkpoint_dir(path)
    candidates = [path / FINAL_MODEL, *find_checkpoints(inside)[:1], find_best(inside), *find_checkpoints(path)[:1]]
    for candidate in [*candidates, find_best(path)]:
        if candidate is not None and candidate.is_file():
            return candidate
    raise CheckpointLoadError(
        f"{path} holds no trained model ({FINAL_MODEL}, checkpoints/last_checkpoint_*.pt or best_model_*.pt)"
    )


def run_dir_of(file: Path) -> Path | None:
    """The run folder a model file belongs to (the one with an mnist-ignite ``config.json``), if any."""
    for folder in (file.parent, file.parent.parent):
        if read_run_config(folder) is not None:
            return folder
    return None


def _model_spec(run_dir: Path | None, state: Any, file: Path, trust: bool) -> tuple[str, dict[str, Any]]:
    """The model spec and its options: the checkpoint's own record, else the run's config.json, else the seed."""
    record, source = model_record(state), str(file)
    if record is None and run_dir is not None:
        recorded = read_run_config(run_dir)
        if recorded is None and (run_dir / CONFIG).exists():
            raise CheckpointLoadError(f"cannot read {run_dir / CONFIG}: it is not an mnist-ignite run's settings")
        if recorded and recorded.get("model"):
            record, source = (str(recorded["model"]), dict(recorded.get("model_args") or {})), str(run_dir / CONFIG)
    spec, args = record or (DEFAULT_MODEL, {})
    require_trusted(spec, source, trust, how="--trust-code")
    return spec, args


def _weights(state: Any, file: Path) -> Mapping[str, torch.Tensor]:
    """The model weights of a training checkpoint, a ``{"model": ...}`` dict or a bare state_dict."""
    if isinstance(state, Mapping):
        meta = state.get("meta")
        if isinstance(meta, Mapping):
            if meta.get("format") != FORMAT:
                raise CheckpointLoadError(f"{file} is not an mnist-ignite checkpoint (format {meta.get('format')!r})")
            return state["model"]
        if isinstance(state.get("model"), Mapping):
            return state["model"]
        if state and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            return state
    raise CheckpointLoadError(f"{file} is not an mnist-ignite model or checkpoint (no model weights in it)")


def load_trained(path: str | os.PathLike, device: torch.device | str = "cpu", trust: bool = False) -> TrainedModel:
    """Load the model that ``path`` (a model file or a run folder) holds, in eval mode on ``device``.

    Args:
        path: a run folder, ``final_model.pt``, ``best_model_*.pt`` or a checkpoint.
        device: where the model goes.
        trust: rebuild a model whose spec (read from the file or its run's config.json) imports code.
    """
    file = find_model_file(path)
    if kind := export_format(file):
        raise CheckpointLoadError(
            f"{file} is an exported model ({kind}), not a checkpoint: use its run folder or .pt model "
            "(predict and serve also take exported models)"
        )
    state = load_tensors(file)
    weights = _weights(state, file)
    run_dir = run_dir_of(file)
    spec, args = _model_spec(run_dir, state, file, trust)
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
