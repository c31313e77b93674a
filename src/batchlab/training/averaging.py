"""Exponential weight averaging whose horizon grows with the run (Zhang et al. 2025), shared by both trainers.

At step t the average keeps beta_t = 2^(-1/(h t)) of itself and takes 1 - beta_t from the weights just updated, so its
half-life is the share h of the steps so far. The average starts at the initial weights. Both trainers update it
with the same element-wise `lerp_` after every optimizer step, so one run's average has the same bits in either.
"""

from __future__ import annotations

import torch
from torch import Tensor


def new_weight(step: int, half_life: float) -> float:
    """The share 1 - beta_t of the current weights taken into the average at `step` (1-based)."""
    return 1.0 - 0.5 ** (1.0 / (half_life * step))


def update_(average: dict[str, Tensor], weights: dict[str, Tensor], step: int, half_life: float,
            active: Tensor | None = None) -> None:
    """Move `average` toward `weights` in place; with `active` ([K] bool over stacked runs) only the runs it marks
    move, each by the same arithmetic as when all do."""
    w = new_weight(step, half_life)
    for name, avg in average.items():
        if active is None:
            avg.lerp_(weights[name], w)
        else:
            avg.copy_(torch.where(active.view(-1, *[1] * (avg.dim() - 1)), avg.lerp(weights[name], w), avg))
