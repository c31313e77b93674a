"""The estimator noise of B_simple: a delete-a-group jackknife over the examples it was measured on.

B_simple = tr(Sigma)/|G|^2 from n examples is a ratio whose denominator, the bias-corrected |G|^2, can be
small beside tr(Sigma)/n; its sampling error over the examples is then large, and the seeds of a study do
not show it (every run of a study is measured on the same fixed examples). The examples are split into K
groups (example j in group j mod K); each group's sum of per-example gradients and of their squared norms
suffices to recompute the statistics without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

JACKKNIFE_GROUPS = 16
"""Groups of the jackknife (delete-one below this many examples): 15 degrees of freedom for its variance."""


@dataclass(frozen=True)
class Jackknife:
    """The jackknife standard error of log B_simple over K groups of examples.

    log_se is NaN when it is not defined: fewer than 3 examples, B_simple itself undefined, or `unstable`
    leave-a-group-out estimates whose bias-corrected |G|^2 was not positive (B_simple is then not resolved
    from infinity by these examples)."""

    log_se: float
    groups: int
    unstable: int


def n_groups(n: int) -> int:
    """Groups used for n examples: JACKKNIFE_GROUPS, or one per example when there are fewer."""
    return min(JACKKNIFE_GROUPS, n)


def group_of(start: int, rows: int, groups: int, device: torch.device | None = None) -> Tensor:
    """The group of each of `rows` consecutive examples from position `start` (position mod groups)."""
    return torch.arange(start, start + rows, device=device) % groups


def b_simple_jackknife(group_sum: Tensor, group_sq: Tensor, group_n: Tensor) -> Jackknife:
    """Jackknife of log B_simple from per-group sums: group_sum [K, P] of per-example gradients g_i,
    group_sq [K] of |g_i|^2, group_n [K] of examples (float64).

    Leaving group k out: m = (S - s_k)/n', tr(Sigma) = (Q - q_k - n'|m|^2)/(n' - 1), |G|^2 = |m|^2 - tr/n',
    the estimators per_example_stats uses; SE = sqrt((K-1)/K * sum_k (log b_k - mean)^2).
    """
    k = len(group_n)
    n = float(group_n.sum())
    if k < 2 or n < 3:
        return Jackknife(math.nan, k, 0)
    kept = n - group_n
    means = (group_sum.sum(0, keepdim=True) - group_sum) / kept[:, None]
    mean_sq = means.pow(2).sum(1)
    trace = (group_sq.sum() - group_sq - kept * mean_sq) / (kept - 1)
    grad_sq = mean_sq - trace / kept
    defined = (grad_sq > 0) & (trace > 0)
    unstable = int((~defined).sum())
    if unstable:
        return Jackknife(math.nan, k, unstable)
    logs = torch.log(trace / grad_sq)
    spread = (logs - logs.mean()).pow(2).sum()
    return Jackknife(math.sqrt(float(spread) * (k - 1) / k), k, 0)
