"""The seed's model: ERA Session 5's CNN."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Net"]


class Net(nn.Module):
    """ERA Session 5's CNN: four 3x3 convs, two max-pools, two linear layers (593,200 parameters).

    Shapes: 28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4, then 256*4*4 = 4096 -> 50 -> 10 log-probabilities.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3)
        self.conv4 = nn.Conv2d(128, 256, kernel_size=3)
        self.fc1 = nn.Linear(4096, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the seed writes F.relu(x, 2): the 2 is `inplace`, not a threshold
        x = F.relu(self.conv1(x), inplace=True)
        x = F.relu(F.max_pool2d(self.conv2(x), 2), inplace=True)
        x = F.relu(self.conv3(x), inplace=True)
        x = F.relu(F.max_pool2d(self.conv4(x), 2), inplace=True)
        x = x.reshape(-1, 4096)
        x = F.relu(self.fc1(x), inplace=True)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)
