"""The learning-rate rule: how the rate depends on batch size and on the step (warmup)."""

from __future__ import annotations

import math

from batchlab.config import Optim


def scaled_lr(optim: Optim, batch_size: int, base_lr: float | None = None) -> float:
    """Peak learning rate at this batch size: fixed, linear (Goyal et al. 2017) or square-root scaling.

    base_lr overrides optim.lr (a candidate of the tuned grid, used as is at every batch size).
    """
    lr = optim.lr if base_lr is None else base_lr
    ratio = batch_size / optim.base_batch_size
    factor = {"fixed": 1.0, "tuned": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[optim.lr_rule]
    return lr * factor


def warmup_steps(optim: Optim, total_steps: int) -> int:
    return int(round(optim.warmup * total_steps))


def lr_at(step: int, peak_lr: float, n_warmup: int) -> float:
    """Learning rate of the 1-based optimizer step: linear warmup to the peak, then constant."""
    if n_warmup <= 0 or step > n_warmup:
        return peak_lr
    return peak_lr * step / n_warmup
