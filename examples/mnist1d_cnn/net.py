"""A small 1-D CNN for MNIST-1D written as a plain torch.nn.Module, and the factory a batchlab config names.

batchlab calls `make_model(in_shape, n_classes, **args)` with one sample's shape ([1, 40] for MNIST-1D) and the
number of classes, and trains what it returns with cross-entropy (`task: classifier`). `encode` gives the
embedding the downstream SVM scores; a model without it trains all the same, with that step skipped.
No BatchNorm: its statistics depend on the batch, the variable under study (GroupNorm would do).
"""

from __future__ import annotations

import torch
from torch import nn


class Conv1dNet(nn.Module):
    """Two conv blocks (kernel 5, stride 2, ReLU), a dense ReLU embedding layer, a linear head."""

    def __init__(self, channels: int, length: int, n_classes: int, width: int = 32, embedding: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(channels, width, kernel_size=5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, kernel_size=5, stride=2, padding=2), nn.ReLU(),
        )
        for _ in range(2):  # each conv halves the length (kernel 5, stride 2, padding 2), rounding up
            length = (length + 1) // 2
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(width * length, embedding), nn.ReLU())
        self.head = nn.Linear(embedding, n_classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding [batch, embedding] the downstream SVM scores."""
        return self.embed(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [batch, n_classes]."""
        return self.head(self.encode(x))


def make_model(in_shape: tuple[int, ...], n_classes: int, width: int = 32, embedding: int = 32) -> nn.Module:
    """The factory: samples of shape [channels, length] in, n_classes logits out."""
    channels, length = in_shape
    return Conv1dNet(channels, length, n_classes, width, embedding)
