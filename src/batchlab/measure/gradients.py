"""Gradient noise: per-example gradient statistics, the gradient noise scale and gradient spread.

Definitions (McCandlish et al. 2018; Vaessen & van Leeuwen 2024):
- g_i is the gradient of example i's own loss (unscaled); G = E[g_i]; Sigma = Cov[g_i].
- A minibatch of B i.i.d. examples has a mean-reduced gradient with mean G and covariance Sigma/B
  (times (N-B)/(N-1) when drawn without replacement from N examples), so E|G_B|^2 = |G|^2 + tr(Sigma)/B.
- B_simple = tr(Sigma) / |G|^2.
- Gradient spread at batch size B: draw minibatches of size B, take each parameter's standard
  deviation (ddof=1) of the minibatch gradient across draws, and average over parameters.

All trainable parameters (requires_grad) count, in `model.named_parameters()` order; statistics
accumulate in float64. The model's train/eval mode is left as the caller set it: use eval mode for
models with dropout or batch norm, or the measured noise includes the dropout masks and batch norm
couples the examples of a minibatch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from batchlab.measure.jackknife import Jackknife, b_simple_jackknife, group_of, n_groups
from batchlab.nets.models import count_parameters

SampleLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""sample_loss(model, x, y) -> per-example losses of shape [B], not reduced."""


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
    jackknife: Jackknife  # the estimator noise of log B_simple over these examples


def trainable_parameters(model: nn.Module) -> dict[str, Tensor]:
    """The parameters the statistics cover: those with requires_grad, by name."""
    return {k: v for k, v in model.named_parameters() if v.requires_grad}


def flatten_grads(grads: Iterable[Tensor], batch_dims: int = 0, out: Tensor | None = None) -> Tensor:
    """Concatenate gradient tensors into one vector ([P]) or, with batch_dims=1, rows ([n, P]).

    With `out` (float64, say) each gradient is copied into its slice of it: the same values as the
    concatenation converted, without the concatenated copy."""
    if out is None:
        return torch.cat([g.flatten(batch_dims) for g in grads], dim=batch_dims)
    flats = [g.flatten(batch_dims) for g in grads]
    width = sum(f.shape[-1] for f in flats)
    if width != out.shape[-1]:
        raise ValueError(f"the gradients hold {width} values per row, the buffer {out.shape[-1]}")
    start = 0
    for flat in flats:
        out[..., start : start + flat.shape[-1]].copy_(flat)
        start += flat.shape[-1]
    return out


def _check_losses(losses: Tensor, n: int) -> None:
    if losses.shape != (n,):
        raise ValueError(f"sample_loss must return per-example losses of shape [{n}], got {tuple(losses.shape)}")


def per_example_grads(
    model: nn.Module, sample_loss: SampleLoss, x: Tensor, y: Tensor, chunk_size: int = 64, out: Tensor | None = None
) -> Iterator[Tensor]:
    """Yield per-example gradients as [chunk, P] blocks (torch.func), so memory stays bounded by chunk x P;
    with `out` ([chunk_size, P]) each block is written into its first rows, converted to its dtype."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    wrapper = _LossModule(model, sample_loss)
    params = {f"model.{k}": v.detach() for k, v in trainable_parameters(model).items()}
    buffers = {f"model.{k}": v for k, v in model.named_buffers()}

    def one_loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        losses = functional_call(wrapper, (p, buffers), (xi[None], yi[None]))
        _check_losses(losses, 1)
        return losses[0]

    # randomness="different": in train mode each example gets its own dropout mask, as in a minibatch.
    per_example = vmap(grad(one_loss), in_dims=(None, 0, 0), randomness="different")
    for i in range(0, len(x), chunk_size):
        grads = per_example(params, x[i : i + chunk_size], y[i : i + chunk_size])
        yield flatten_grads(grads.values(), batch_dims=1, out=None if out is None else out[: min(chunk_size, len(x) - i)])


def per_example_stats(
    model: nn.Module, sample_loss: SampleLoss, x: Tensor, y: Tensor, chunk_size: int = 64
) -> GradientStats:
    """Unbiased tr(Sigma), |G|^2 and B_simple over the n given examples from per-example gradients.

    Only running float64 sums of g_i and of g_i^2 (per parameter) are kept:
    tr(Sigma) = (sum |g_i|^2 - n |mean g|^2) / (n - 1) and |G|^2 = |mean g|^2 - tr(Sigma) / n;
    and, per jackknife group of examples, the sums of g_i and of |g_i|^2 (batchlab.measure.jackknife).
    """
    n = len(x)
    if n < 2:
        raise ValueError("per-example statistics need at least 2 examples")
    total = sq_total = None
    # float64 buffers reused across chunks: the same sums, without fresh allocations or a float32 copy
    wide = torch.empty(min(chunk_size, n), count_parameters(model), dtype=torch.float64, device=x.device)
    squares = torch.empty_like(wide)
    groups = n_groups(n)
    group_sum = torch.zeros(groups, wide.shape[1], dtype=torch.float64, device=x.device)
    group_sq = torch.zeros(groups, dtype=torch.float64, device=x.device)
    start = 0
    for block in per_example_grads(model, sample_loss, x, y, chunk_size, out=wide):
        rows = len(block)
        s, s2 = block.sum(0), torch.pow(block, 2, out=squares[:rows]).sum(0)
        total = s if total is None else total.add_(s)
        sq_total = s2 if sq_total is None else sq_total.add_(s2)
        member = group_of(start, rows, groups, x.device)
        group_sum.index_add_(0, member, block)
        group_sq.index_add_(0, member, squares[:rows].sum(1))
        start += rows
    member_all = group_of(0, n, groups, x.device)
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
        jackknife=b_simple_jackknife(group_sum, group_sq, torch.bincount(member_all, minlength=groups).double()),
    )


def minibatch_grad(model: nn.Module, sample_loss: SampleLoss, x: Tensor, y: Tensor, out: Tensor | None = None) -> Tensor:
    """Flattened float64 gradient of the mean loss over the given examples (zeros for unused parameters),
    written into `out` ([P] float64) when given."""
    params = list(trainable_parameters(model).values())
    with torch.enable_grad():
        losses = sample_loss(model, x, y)
        _check_losses(losses, len(x))
        grads = torch.autograd.grad(losses.mean(), params, allow_unused=True)
    if out is None:
        out = torch.empty(count_parameters(model), dtype=torch.float64, device=x.device)
    return flatten_grads((torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)), out=out)


def draw(n: int, size: int, generator: torch.Generator, replace: bool) -> Tensor:
    """Indices of one minibatch: i.i.d. with replacement, or a uniformly random subset without."""
    if replace:
        return torch.randint(0, n, (size,), generator=generator)
    if size > n:
        raise ValueError(f"cannot draw {size} of {n} examples without replacement")
    return torch.randperm(n, generator=generator)[:size]


def _grad_at(model: nn.Module, sample_loss: SampleLoss, x: Tensor, y: Tensor, idx: Tensor, out: Tensor | None = None) -> Tensor:
    idx = idx.to(x.device)
    return minibatch_grad(model, sample_loss, x[idx], y[idx.to(y.device)], out)


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
    """McCandlish's estimator of |G|^2, tr(Sigma) and B_simple from minibatch gradient norms at two batch sizes.

    |G_B|^2 is averaged over n_draws minibatches at each size, then
    |G|^2 = (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small),
    tr(Sigma) = (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big), and B_simple is their ratio
    (a ratio of averages). With replacement the draws are i.i.d. from the n examples, so the estimates
    are unbiased for that empirical distribution: |mean g|^2 and tr(Sigma) with ddof=0. Without
    replacement each minibatch's covariance carries the factor (n-B)/(n-1), so E|G_B|^2 =
    |mean g|^2 + tr(Sigma_ddof1) (1/B - 1/n); the same formulas are then unbiased for tr(Sigma) with
    ddof=1 and for |mean g|^2 - tr(Sigma)/n, the quantities per_example_stats returns.
    """
    if not 1 <= b_small < b_big:
        raise ValueError(f"need 1 <= b_small < b_big, got {b_small}, {b_big}")
    if n_draws < 1:
        raise ValueError(f"n_draws must be positive, got {n_draws}")
    n = len(x)
    small = big = 0.0
    for _ in range(n_draws):
        idx_small, idx_big = draw(n, b_small, generator, replace), draw(n, b_big, generator, replace)
        small += _grad_at(model, sample_loss, x, y, idx_small).pow(2).sum().item()
        big += _grad_at(model, sample_loss, x, y, idx_big).pow(2).sum().item()
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
        "replace": replace,
    }


def gradient_spread(
    model: nn.Module,
    sample_loss: SampleLoss,
    x: Tensor,
    y: Tensor,
    batch_sizes: Iterable[int],
    n_draws: int = 10,
    generator: torch.Generator | None = None,
    replace: bool = False,
    param_var: Tensor | None = None,
) -> pd.DataFrame:
    """Measured gradient spread per batch size, with the B^-1/2 theory line when param_var is given.

    Measured: n_draws minibatches of size B from the N given examples (without replacement within a
    minibatch by default, like real minibatches), each parameter's std (ddof=1) of the mean-reduced
    minibatch gradient across draws, averaged over parameters. As a mean of sample stds it sits below
    the theory by the small-sample factor c4(n_draws) (about 2.7% at 10 draws).
    Theory: mean over parameters of sqrt(param_var / B * fpc), with param_var the per-example variance
    (ddof=1, from per_example_stats) and fpc = (N-B)/(N-1) without replacement, 1 with. The exact
    variance of a minibatch mean is param_var (1/B - 1/N) without replacement and
    param_var (N-1)/(N B) with, so the theory line is high by a factor sqrt(N/(N-1)) (about 1/(2N)).
    """
    if n_draws < 2:
        raise ValueError("the spread needs at least 2 draws")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    n, n_params = len(x), count_parameters(model)
    rows = []
    for b in batch_sizes:
        b = int(b)
        if not replace and b > n:
            raise ValueError(f"batch size {b} exceeds the {n} evaluation examples")
        grads = torch.empty(n_draws, n_params, dtype=torch.float64, device=x.device)
        for row in grads:
            _grad_at(model, sample_loss, x, y, draw(n, b, generator, replace), out=row)
        spread = grads.std(dim=0, correction=1).mean().item()
        theory = math.nan
        if param_var is not None:
            fpc = 1.0 if replace else (n - b) / (n - 1)
            theory = (param_var.double().clamp(min=0) / b * fpc).sqrt().mean().item()
        rows.append({"batch_size": b, "spread": spread, "spread_theory": theory, "n_draws": n_draws})
    return pd.DataFrame(rows, columns=["batch_size", "spread", "spread_theory", "n_draws"])


def log_log_slope(batch_sizes, values) -> float:
    """Least-squares slope of log(values) against log(batch size): -0.5 for pure B^-1/2 noise."""
    return float(np.polyfit(np.log(np.asarray(batch_sizes, dtype=float)), np.log(np.asarray(values, dtype=float)), 1)[0])
