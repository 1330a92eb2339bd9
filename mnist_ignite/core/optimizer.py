"""The run's optimizer, from its settings: torch's SGD, Adam, AdamW or Adadelta.

Declared once on :class:`~mnist_ignite.config.settings.Config` (``--optimizer``, ``--lr``,
``--momentum`` for SGD, ``--weight-decay``); the optimizer's state rides in every checkpoint, and
the settings are run-defining, so a resume continues the same optimizer exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from mnist_ignite.config.settings import Config

__all__ = ["build_optimizer", "graphable"]


def build_optimizer(config: Config, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``params`` with the run's lr and weight decay (torch's defaults otherwise)."""
    lr, decay = float(config.lr), config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay)
    if config.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")  # Config's choices keep this unreachable


def graphable(config: Config) -> bool:
    """Whether the CUDA-graph step (its own SGD-with-momentum kernels) computes what this optimizer would."""
    return config.optimizer == "sgd" and not config.weight_decay and config.grad_clip is None and config.accumulate == 1
