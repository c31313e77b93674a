"""Contrastive self-supervised learning with in-batch negatives (SimCLR's NT-Xent / InfoNCE).

Each sample is augmented twice; a view's positive is the other view of its sample, its negatives are
the 2(B - 1) views of the other samples in the batch. So the batch size changes the task itself (at
B = 1 there is no negative and the loss is identically 0), as in contrastive speech and vision models.
Augmentations for 1-D signals and images: a random circular shift, an amplitude scale and additive
Gaussian noise, drawn from the loss's own seeded generator on the CPU so runs are reproducible on any
device and a resumed run continues the same stream. The batched engine trains K runs at once with
runs_info_nce: each run draws from its own loss's generator exactly what that loss would draw, and
its negatives come from its own batch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def augment(x: Tensor, generator: torch.Generator, shift: int, scale: float, noise: float) -> Tensor:
    """One random view of each sample: circular shift along the last axis, amplitude scale, noise."""
    n, length = x.shape[0], x.shape[-1]
    offsets = torch.randint(-shift, shift + 1, (n,), generator=generator) if shift else torch.zeros(n, dtype=torch.long)
    gains = 1 + scale * (2 * torch.rand(n, generator=generator) - 1)
    jitter = noise * torch.randn(x.shape, generator=generator)
    positions = (torch.arange(length).unsqueeze(0) - offsets.unsqueeze(1)) % length  # [n, length]
    index = positions.view(n, *([1] * (x.dim() - 2)), length).expand_as(x).to(x.device)
    shifted = torch.gather(x, -1, index)
    view_shape = (n, *([1] * (x.dim() - 1)))
    return shifted * gains.view(view_shape).to(x.device, x.dtype) + jitter.to(x.device, x.dtype)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """Per-sample NT-Xent: the mean over a sample's two views of cross-entropy against the other 2B - 1 views."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), -math.inf)
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    per_view = F.cross_entropy(logits, targets, reduction="none")
    return (per_view[:b] + per_view[b:]) / 2


class InfoNCELoss:
    """`loss(model, x, y) -> [B]` for a contrastive model: two augmented views, in-batch negatives.

    The labels are ignored (self-supervised). `generator` draws the augmentations; the trainer saves
    and restores its state so a resumed run draws the same views.
    """

    def __init__(self, temperature: float, shift: int, scale: float, noise: float, seed: int):
        self.temperature, self.shift, self.scale, self.noise = temperature, shift, scale, noise
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        v1 = augment(x, self.generator, self.shift, self.scale, self.noise)
        v2 = augment(x, self.generator, self.shift, self.scale, self.noise)
        return nt_xent(model(v1), model(v2), self.temperature)

    def fresh(self, seed: int) -> "InfoNCELoss":
        """The same loss with its own generator (for evaluation that must not consume training draws)."""
        return InfoNCELoss(self.temperature, self.shift, self.scale, self.noise, seed)


def runs_nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """[K, B]: nt_xent of K runs at once ([K, B, d] views), each run's negatives from its own batch only."""
    k, b = z1.shape[:2]
    z = F.normalize(torch.cat([z1, z2], dim=1), dim=2)
    logits = z @ z.transpose(1, 2) / temperature
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), -math.inf)
    targets = torch.cat([torch.arange(b, 2 * b, device=z.device), torch.arange(0, b, device=z.device)])
    per_view = F.cross_entropy(logits.flatten(0, 1), targets.repeat(k), reduction="none").view(k, 2 * b)
    return (per_view[:, :b] + per_view[:, b:]) / 2


def runs_info_nce(runs_model: Callable[[Tensor], Tensor], x: Tensor, losses: list[InfoNCELoss]) -> Tensor:
    """[K, B]: each run's InfoNCELoss on its own batch x[k] (x: [K, B, ...]), from the views its loss draws.

    runs_model maps [K, B, ...] inputs to [K, B, d] projections, run k's model on x[k] (the engine's
    stacked models). Run k's two views come from losses[k]'s generator in the order its own call draws
    them, so each run sees the augmentations it would see trained alone.
    """
    pairs = [[augment(x[k], loss.generator, loss.shift, loss.scale, loss.noise) for _ in range(2)]
             for k, loss in enumerate(losses)]
    first, second = (torch.stack([pair[i] for pair in pairs]) for i in range(2))
    return runs_nt_xent(runs_model(first), runs_model(second), losses[0].temperature)
