"""B_simple's own estimator noise: the delete-a-group jackknife against a brute-force recomputation, its standard
error against the spread of B_simple over independent samples, and its place in the at-target interval."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from batchlab.measure.gradients import per_example_stats
from batchlab.measure.jackknife import JACKKNIFE_GROUPS, b_simple_jackknife


def brute_force_log_se(grads: np.ndarray, groups: int) -> float:
    """Leave each group (example j mod groups) out and recompute B_simple from the remaining rows directly."""
    member = np.arange(len(grads)) % groups
    logs = []
    for k in range(groups):
        rest = grads[member != k]
        n = len(rest)
        trace = rest.var(axis=0, ddof=1).sum()
        grad_sq = (rest.mean(axis=0) ** 2).sum() - trace / n
        logs.append(math.log(trace / grad_sq))
    logs = np.array(logs)
    return math.sqrt((groups - 1) / groups * ((logs - logs.mean()) ** 2).sum())


def group_sums(grads: np.ndarray, groups: int):
    member = np.arange(len(grads)) % groups
    sums = np.stack([grads[member == k].sum(0) for k in range(groups)])
    squares = np.array([(grads[member == k] ** 2).sum() for k in range(groups)])
    counts = np.bincount(member, minlength=groups).astype(float)
    return torch.from_numpy(sums), torch.from_numpy(squares), torch.from_numpy(counts)


def gaussian_grads(rng: np.random.Generator, n: int, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return mean + sd * rng.standard_normal((n, len(mean)))


def test_grouped_sums_give_the_brute_force_jackknife():
    rng = np.random.default_rng(0)
    grads = gaussian_grads(rng, 203, np.linspace(0.5, 1.5, 7), np.full(7, 3.0))  # groups of 12 and 13 examples
    result = b_simple_jackknife(*group_sums(grads, JACKKNIFE_GROUPS))
    assert result.groups == JACKKNIFE_GROUPS and result.unstable == 0
    assert result.log_se == pytest.approx(brute_force_log_se(grads, JACKKNIFE_GROUPS), rel=1e-9)
    few = grads[:9]  # fewer examples than groups: delete-one
    assert b_simple_jackknife(*group_sums(few, 9)).log_se == pytest.approx(brute_force_log_se(few, 9), rel=1e-9)


def test_a_gradient_not_resolved_from_zero_leaves_the_jackknife_undefined():
    rng = np.random.default_rng(1)
    grads = gaussian_grads(rng, 64, np.zeros(5), np.ones(5))
    grads -= grads.mean(0)  # mean exactly 0: a leave-out's |mean|^2 is about tr/(15 n'), short of tr/n'
    result = b_simple_jackknife(*group_sums(grads, JACKKNIFE_GROUPS))
    assert math.isnan(result.log_se) and result.unstable == JACKKNIFE_GROUPS


def test_the_jackknife_standard_error_matches_the_spread_over_independent_samples():
    """400 independent samples of 1,024 examples from one gradient distribution: the jackknife's SE of log B_simple
    agrees with the standard deviation of log B_simple over the samples (sampling error of that SD about 4%)."""
    rng = np.random.default_rng(2)
    mean, sd = np.full(8, 0.25), np.full(8, 2.0)  # B_simple = 8 * 4 / (8 * 0.0625) = 64
    logs, ses = [], []
    for _ in range(400):
        grads = gaussian_grads(rng, 1024, mean, sd)
        trace = grads.var(axis=0, ddof=1).sum()
        logs.append(math.log(trace / ((grads.mean(0) ** 2).sum() - trace / 1024)))
        ses.append(b_simple_jackknife(*group_sums(grads, JACKKNIFE_GROUPS)).log_se)
    assert np.exp(np.mean(logs)) == pytest.approx(64, rel=0.05)
    assert np.mean(ses) == pytest.approx(np.std(logs, ddof=1), rel=0.15)


def test_per_example_stats_carry_the_jackknife_of_linear_regression_in_closed_form():
    """y = w.x + b with squared loss: g_i = 2 (w.x_i + b - y_i) [x_i, 1], computed here without torch.func."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(300, 4, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.3 * torch.randn(300, generator=gen)
    model = torch.nn.Linear(4, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.8, -1.5, 0.2, 0.1]]))
        model.bias.fill_(0.2)

    def sample_loss(m, xb, yb):
        return (m(xb).squeeze(-1) - yb) ** 2

    residual = (x.double() @ model.weight.detach().double().T).squeeze(-1) + model.bias.detach().double() - y.double()
    grads = (2 * residual[:, None] * torch.cat([x.double(), torch.ones(300, 1, dtype=torch.float64)], 1)).numpy()
    expected = brute_force_log_se(grads, JACKKNIFE_GROUPS)
    for chunk in (7, 64):  # the groups follow the examples, not the chunks
        stats = per_example_stats(model, sample_loss, x, y, chunk_size=chunk)
        assert stats.jackknife.groups == JACKKNIFE_GROUPS
        assert stats.jackknife.log_se == pytest.approx(expected, rel=1e-5)


def at_target(b_simple: list[float], log_se: list[float]) -> pd.DataFrame:
    """One run per seed at the target."""
    n = len(b_simple)
    return pd.DataFrame({"batch_size": [8] * n, "seed": list(range(n)), "crossing": [100.0] * n, "fraction": [1.0] * n,
                         "step": [100] * n, "b_simple": b_simple, "b_simple_log_se": log_se, "eval_samples": [1024] * n,
                         "eval_loss": [0.1] * n, "step_factor": [1.0] * n})


def test_the_interval_at_the_target_convolves_the_seeds_with_the_estimator_noise():
    """Two seeds with the same B_simple: the seeds alone give no width. Resampling them gives {0, 1} (either order,
    half the draws: variance (s^2 + s^2)/4) or one seed twice (its error repeated: variance 4 s^2 / 4), so the upper
    end is 100 exp(x) where 0.5 Phi(x / (s / sqrt 2)) + 0.5 Phi(x / s) = 0.975."""
    from batchlab.analysis.at_target import b_simple_at_target

    s = 0.2
    row = b_simple_at_target(at_target([100.0, 100.0], [s, s]), n_boot=20000).iloc[0]
    x = brentq(lambda v: 0.5 * norm.cdf(v / (s / math.sqrt(2))) + 0.5 * norm.cdf(v / s) - 0.975, 0, 2)
    assert row["estimate"] == pytest.approx(100.0, rel=1e-12)
    assert row["high"] == pytest.approx(100 * math.exp(x), rel=0.02)  # quantile's MC error about 0.4%
    assert row["low"] == pytest.approx(100 * math.exp(-x), rel=0.02)
    assert "jackknife" in row["definition"] and "1024 examples" in row["definition"]
    exact = b_simple_at_target(at_target([100.0, 100.0], [0.0, 0.0]), n_boot=2000).iloc[0]
    assert exact["low"] == exact["high"] == pytest.approx(100.0, rel=1e-12)


def test_the_noise_scale_ratio_widens_by_the_estimator_noise():
    from batchlab.analysis.b_crit_claims import noise_scale_test

    seeds = list(range(5))
    steps = pd.DataFrame([{"batch_size": b, "seed": sd, "steps": 100 * (1 + 50 / b) * (1 + 0.01 * sd), "reached": True}
                          for b in (4, 16, 64, 256, 1024) for sd in seeds])
    values = [50.0 * (1 + 0.01 * sd) for sd in seeds]

    def noise(se: float) -> pd.DataFrame:
        return pd.DataFrame([{"batch_size": b, "seed": sd, "fraction": 1.0, "step": int(100 * (1 + 50 / b)),
                              "b_simple": values[sd], "b_simple_log_se": se, "eval_samples": 1024}
                             for b in (4, 16, 64, 256, 1024) for sd in seeds])

    tight, wide = noise_scale_test(noise(0.0), steps, 3.0, 2000), noise_scale_test(noise(0.5), steps, 3.0, 2000)
    assert tight["estimate"] == wide["estimate"]
    assert np.log(wide["high"] / wide["low"]) > 1.5 * np.log(tight["high"] / tight["low"])
    assert "jackknife" in wide["detail"]
