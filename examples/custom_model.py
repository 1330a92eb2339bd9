"""Bring your own model: a small BatchNorm + dropout + global-average-pooling net (under 20k parameters).

    python examples/custom_model.py --epochs 15          # trains SmallNet
    mnist-ignite --model examples/custom_model.py:SmallNet --model-arg width=12 ... # same class, main CLI
    mnist-ignite summary --model examples/custom_model.py:SmallNet                   # its layers first

A model is any ``nn.Module`` that maps a (B, 1, 28, 28) batch of normalized MNIST images to
(B, 10) scores: logits (as here) or log-probabilities (as the seed's Net) both train, because the
loss is cross-entropy, which applies ``log_softmax`` itself (and leaves log-probabilities as they
are). Constructor keywords come from ``--model-arg key=value`` or a ``[model]`` TOML table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn


def _block(cin: int, cout: int, dropout: float, padding: int = 0) -> nn.Sequential:
    """3x3 conv (no bias: BatchNorm has one) -> BatchNorm -> ReLU -> dropout."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=padding, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
    )


class SmallNet(nn.Module):
    """Six 3x3 conv blocks, one max-pool with a 1x1 squeeze, global average pooling, a 1x1 classifier.

    Shapes (width 16): 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> 6 -> 6 -> GAP 1; receptive field 22
    px at the last 3x3 conv, the whole image after the pooling. 9,762 parameters at width 16 (15,120 at 20).

    Args:
        width: channels of the wide conv layers (the first one and the squeeze use half).
        dropout: ``Dropout2d`` probability after every conv block.
    """

    def __init__(self, width: int = 16, dropout: float = 0.05) -> None:
        super().__init__()
        if width < 2 or not 0 <= dropout < 1:
            raise ValueError(f"width must be >= 2 and dropout in [0, 1), got width={width}, dropout={dropout}")
        half = width // 2
        self.features = nn.Sequential(
            _block(1, half, dropout),  # 26
            _block(half, width, dropout),  # 24
            nn.MaxPool2d(2),  # 12
            nn.Conv2d(width, half, 1, bias=False),  # 1x1 squeeze: fewer channels into the next 3x3
            _block(half, width, dropout),  # 10
            _block(width, width, dropout),  # 8
            _block(width, width, dropout),  # 6
            _block(width, width, dropout, padding=1),  # 6
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Conv2d(width, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(x).flatten(1)  # logits


if __name__ == "__main__":
    from mnist_ignite.cli import main

    # train SmallNet with every other option of the command line (and its defaults)
    sys.exit(main([*sys.argv[1:], "--model", f"{Path(__file__).resolve()}:SmallNet"]))
