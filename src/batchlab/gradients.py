"""Gradient noise: per-example gradient statistics, the gradient noise scale and gradient spread.

Definitions (McCandlish et al. 2018; Vaessen & van Leeuwen 2024):
- g_i is the gradient of example i's own loss (unscaled); G = E[g_i]; Sigma = Cov[g_i].
- A minibatch of B i.i.d. examples has a mean-reduced gradient with mean G and covariance Sigma/B
  (times (N-B)/(N-1) when drawn without replacement from N examples), so E|G_B|^2 = |G|^2 + tr(Sigma)/B.
- B_simple = tr(Sigma) / |G|^2.
- Gradient spread at batch size B: draw minibatches of size B, take each parameter's standard
  deviation (ddof=1) of the minibatch gradient across draws, and average over parameters.
All trainable parameters count; statistics accumulate in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from batchlab.objectives import SampleLoss


class _LossModule(nn.Module):
    """Wraps model and loss so functional_call can swap the model's parameters ("model.<name>")."""

    def __init__(self, model: nn.Module, sample_loss: SampleLoss):
        super().__init__()
        self.model, self.sample_loss = model, sample_loss

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.sample_loss(self.model, x, y)


@dataclass
class GradientStats:
    """Unbiased per-example gradient statistics over n examples."""

    n: int
    grad_sq: float  # unbiased |G|^2 = |mean g|^2 - tr(Sigma)/n
    trace_sigma: float  # unbiased tr(Sigma), ddof=1
    b_simple: float  # tr(Sigma)/|G|^2; NaN when the |G|^2 estimate is not positive
    mean_grad_sq: float  # naive |mean g|^2 (biased upward by tr(Sigma)/n)
    mean_grad: Tensor  # flattened float64 mean gradient
    param_var: Tensor  # flattened float64 per-parameter variance of g_i (ddof=1)


def _trainable(model: nn.Module) -> dict[str, Tensor]:
    return {f"model.{k}": v.detach() for k, v in model.named_parameters() if v.requires_grad}


def per_example_grads(
    model: nn.Module, sample_loss: SampleLoss, x: Tensor, y: Tensor, chunk_size: int = 64
) -> Iterator[Tensor]:
    """Yield per-example gradients as [chunk, P] blocks, so memory stays bounded by chunk_size x P."""
    wrapper = _LossModule(model, sample_loss)
    params = _trainable(model)
    buffers = {f"model.{k}": v for k, v in model.named_buffers()}

    def one_loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        return functional_call(wrapper, (p, buffers), (xi[None], yi[None]))[0]

    per_example = vmap(grad(one_loss), in_dims=(None, 0, 0))
    for i in range(0, len(x), chunk_size):
        grads = per_example(params, x[i : i + chunk_size], y[i : i + chunk_size])
        yield torch.cat([g.flatten(1) for g in grads.values()], dim=1)


def per_example_stats(
    model: nn.Module, sample_loss: SampleLoss, x: Tensor, y: Tensor, chunk_size: int = 64
) -> GradientStats:
    """tr(Sigma), |G|^2 and B_simple from per-example gradients (torch.func), chunked."""
    n = len(x)
    if n < 2:
        raise ValueError("per-example statistics need at least 2 examples")
    total = sq_total = None
    for block in per_example_grads(model, sample_loss, x, y, chunk_size):
        block = block.double()
        s, s2 = block.sum(0), block.pow(2).sum(0)
        total = s if total is None else total + s
        sq_total = s2 if sq_total is None else sq_total + s2
    mean = total / n
    param_var = (sq_total - n * mean.pow(2)) / (n - 1)
    trace_sigma = param_var.sum().item()
    mean_grad_sq = mean.pow(2).sum().item()
    grad_sq = mean_grad_sq - trace_sigma / n
    return GradientStats(
        n=n,
        grad_sq=grad_sq,
        trace_sigma=trace_sigma,
        b_simple=trace_sigma / grad_sq if grad_sq > 0 else math.nan,
        mean_grad_sq=mean_grad_sq,
        mean_grad=mean,
        param_var=param_var,
    )


def minibatch_grad(model: nn.Module, sample_loss: SampleLoss, x: Tensor, y: Tensor) -> Tensor:
    """Flattened float64 gradient of the mean loss over the given examples."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = sample_loss(model, x, y).mean()
    grads = torch.autograd.grad(loss, params)
    return torch.cat([g.flatten() for g in grads]).double()


def draw(n: int, size: int, generator: torch.Generator, replace: bool) -> Tensor:
    """Indices of one minibatch: i.i.d. with replacement, or a random subset without."""
    if replace:
        return torch.randint(0, n, (size,), generator=generator)
    return torch.randperm(n, generator=generator)[:size]


def two_batch_stats(
    model: nn.Module,
    sample_loss: SampleLoss,
    x: Tensor,
    y: Tensor,
    b_small: int,
    b_big: int,
    n_draws: int,
    generator: torch.Generator,
    replace: bool = True,
) -> dict[str, float]:
    """McCandlish's estimator from minibatch gradient norms at two batch sizes (ratio of averages).

    With replacement the draws are i.i.d. and the estimates are unbiased for the population of the
    n given examples (tr(Sigma) with ddof=0). Without replacement each minibatch's covariance carries
    the factor (n-B)/(n-1), which the formulas do not undo.
    """
    if not 1 <= b_small < b_big:
        raise ValueError(f"need 1 <= b_small < b_big, got {b_small}, {b_big}")
    n = len(x)
    small = big = 0.0
    for _ in range(n_draws):
        idx_s, idx_b = draw(n, b_small, generator, replace), draw(n, b_big, generator, replace)
        small += minibatch_grad(model, sample_loss, x[idx_s.to(x.device)], y[idx_s.to(x.device)]).pow(2).sum().item()
        big += minibatch_grad(model, sample_loss, x[idx_b.to(x.device)], y[idx_b.to(x.device)]).pow(2).sum().item()
    small, big = small / n_draws, big / n_draws
    grad_sq = (b_big * big - b_small * small) / (b_big - b_small)
    trace_sigma = (small - big) / (1 / b_small - 1 / b_big)
    return {
        "grad_sq": grad_sq,
        "trace_sigma": trace_sigma,
        "b_simple": trace_sigma / grad_sq if grad_sq > 0 else math.nan,
        "norm_sq_small": small,
        "norm_sq_big": big,
        "b_small": b_small,
        "b_big": b_big,
        "n_draws": n_draws,
    }


def gradient_spread(
    model: nn.Module,
    sample_loss: SampleLoss,
    x: Tensor,
    y: Tensor,
    batch_sizes: list[int],
    n_draws: int = 10,
    generator: torch.Generator | None = None,
    replace: bool = False,
    param_var: Tensor | None = None,
) -> pd.DataFrame:
    """Measured gradient spread per batch size, with the B^-1/2 theory line when param_var is given.

    Theory: mean over parameters of sqrt(var_p / B * fpc), fpc = (N-B)/(N-1) without replacement
    from the N given examples, 1 with replacement.
    """
    if n_draws < 2:
        raise ValueError("the spread needs at least 2 draws")
    generator = generator or torch.Generator().manual_seed(0)
    n = len(x)
    rows = []
    for b in batch_sizes:
        if not replace and b > n:
            raise ValueError(f"batch size {b} exceeds the {n} evaluation examples")
        grads = torch.stack([
            minibatch_grad(model, sample_loss, x[idx.to(x.device)], y[idx.to(x.device)])
            for idx in (draw(n, b, generator, replace) for _ in range(n_draws))
        ])
        spread = grads.std(dim=0, correction=1).mean().item()
        theory = math.nan
        if param_var is not None:
            fpc = 1.0 if replace else (n - b) / (n - 1)
            theory = (param_var.clamp(min=0) / b * fpc).sqrt().mean().item()
        rows.append({"batch_size": b, "spread": spread, "spread_theory": theory, "n_draws": n_draws})
    return pd.DataFrame(rows)


def log_log_slope(batch_sizes, values) -> float:
    """Least-squares slope of log(values) against log(batch size): -0.5 for pure B^-1/2 noise."""
    return float(np.polyfit(np.log(batch_sizes), np.log(values), 1)[0])
