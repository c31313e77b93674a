"""Gradient noise of a cell (batchlab.measure.noise) against linear regression with squared loss, in closed form.

For loss 0.5 (x.theta - y)^2 the per-example gradient is g_i = (x_i.theta - y_i) x_i, so |G|^2 and tr(Sigma)
follow from the data with plain numpy. The model and loss measure_cell builds are swapped for that linear model,
so what is tested is the cell's own wiring: which examples, which estimator, which draws.
"""

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from batchlab.config import GradientNoise
from batchlab.data import PARTS, Dataset
from batchlab.measure import noise
from batchlab.measure.gradients import gradient_spread, per_example_stats, two_batch_stats


def squared_error(model, x, y):
    return 0.5 * (model(x).squeeze(-1) - y) ** 2


def regression_data(x_train, y_train, n_val: int = 5) -> Dataset:
    """A regression data set: the given training rows, then validation rows far off them (using those would show)."""
    rng = np.random.default_rng(99)
    x_val = 100 + 50 * rng.standard_normal((n_val, x_train.shape[1]))
    x = np.concatenate([x_train, x_val]).astype(np.float64)
    y = np.concatenate([y_train, 100 * np.ones(n_val)]).astype(np.float64)
    split = np.array([PARTS["train"]] * len(x_train) + [PARTS["val"]] * n_val, dtype=np.int8)
    return Dataset(x=x, labels={"y": y}, tasks={"y": "regression"}, target="y", split=split, name="toy",
                   synthetic=True, description="")


def closed_form(x, y, theta):
    """Per-example gradients g_i = (x_i.theta - y_i) x_i, their mean and the per-parameter variances (ddof 0 and 1)."""
    g = (x @ theta - y)[:, None] * x
    return g, g.mean(0), g.var(0, ddof=0), g.var(0, ddof=1)


def simplex_design(n: int = 64, a: float = 1.0, b: float = 0.125):
    """n examples, n features, theta = 0 and y = -1, so g_i = x_i = b 1 + a (e_i - 1/n).

    The deviations g_i - G all have the same norm and the same pairwise products, and are orthogonal to G: a
    minibatch's |G_B|^2 depends only on how many examples it repeats. At batch size 1 it is the same for every
    draw, at batch size 2 drawn without replacement too, so the two-batch estimator's only noise is the chance
    (1/n) that a pair drawn with replacement repeats an example. tr(Sigma) (ddof 0) = a^2 (n-1)/n, |G|^2 = n b^2.
    """
    x = b * np.ones((n, n)) + a * (np.eye(n) - 1.0 / n)
    return x, -np.ones(n), np.zeros(n)


@pytest.fixture
def linear_cell(monkeypatch):
    """measure_cell on a linear model without bias: build_model and the loss replaced, a stand-in study."""

    def run(x, y, theta, batch_size, **spec):
        data = regression_data(x, y)
        d = x.shape[1]
        monkeypatch.setattr(noise, "build_model", lambda *args: nn.Linear(d, 1, bias=False).double())
        monkeypatch.setattr(noise, "sample_loss_for", lambda *args: squared_error)
        study = SimpleNamespace(is_classifier=False, model=SimpleNamespace(kind="linear"), seeds=[3],
                                budget=SimpleNamespace(steps=lambda b, n: 100))
        state = {"weight": torch.tensor(theta, dtype=torch.float64)[None]}
        checkpoints = {"seed3": {"0.5": state}, "steps": {"seed3": {"0.5": 37}}}
        spec = GradientNoise(eval_samples=len(x), **spec)
        return noise.measure_cell(study, spec, data, batch_size, checkpoints, torch.device("cpu"))

    return run


def generic_regression(n=64, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.3 * rng.standard_normal(n)
    return x, y, np.array([0.2, -1.0, 1.5, 0.7, 1.0])


def test_per_example_noise_of_a_cell_is_the_closed_form_on_the_training_split(linear_cell):
    """Unbiased tr(Sigma) (ddof 1) and |G|^2 = |mean g|^2 - tr(Sigma)/n at rel 1e-9: an n/(n-1) slip is 1.6% at n = 64."""
    x, y, theta = generic_regression()
    n = len(x)
    _, mean, _, var1 = closed_form(x, y, theta)
    stats, spread = linear_cell(x, y, theta, 8, spread_batch_sizes=[1, 2], spread_draws=4)
    row = stats.iloc[0]
    trace = var1.sum()
    grad_sq = mean @ mean - trace / n
    assert len(stats) == 1 and row["method"] == "per_example" and row["eval_samples"] == n
    assert (row["seed"], row["batch_size"], row["fraction"], row["step"]) == (3, 8, 0.5, 37)
    assert row["trace_sigma"] == pytest.approx(trace, rel=1e-9)
    assert row["grad_sq"] == pytest.approx(grad_sq, rel=1e-9)
    assert row["b_simple"] == pytest.approx(trace / grad_sq, rel=1e-9)
    assert row["eval_loss"] == pytest.approx(np.mean(0.5 * (x @ theta - y) ** 2), rel=1e-9)
    assert spread["probe"].tolist() == ["sweep", "sweep", "own"]


def test_two_batch_noise_of_a_cell_targets_the_population_values_within_its_sampling_error(linear_cell):
    """Draws with replacement estimate tr(Sigma) with ddof 0 and |mean g|^2. On the simplex design (n = 32, |G|^2 =
    tr(Sigma)) both estimates' error is n/(n-1) (X - 1/n) tr(Sigma), X the share of the 2000 big draws that repeat an
    example: its SD is sqrt((1/32)(31/32)/2000) n/(n-1) = 0.40%, so 1.6% is 4 SDs, and an n/(n-1) slip (3.2%) fails."""
    x, y, theta = simplex_design(n=32, b=math.sqrt(31) / 32)
    n = len(x)
    _, mean, var0, var1 = closed_form(x, y, theta)
    stats, _ = linear_cell(x, y, theta, 4, method="two_batch", two_batch_sizes=(1, 2), two_batch_draws=2000,
                           spread_batch_sizes=[1, 2], spread_draws=2)
    row = stats.iloc[0]
    assert row["method"] == "two_batch"
    assert var0.sum() == pytest.approx((n - 1) / n, rel=1e-12) and mean @ mean == pytest.approx((n - 1) / n, rel=1e-12)
    assert row["trace_sigma"] == pytest.approx(var0.sum(), rel=0.016)
    assert row["grad_sq"] == pytest.approx(mean @ mean, rel=0.016)
    assert row["b_simple"] == pytest.approx(1.0, rel=0.032)
    assert abs(row["trace_sigma"] / var1.sum() - 1) > 0.016  # the ddof-1 value lies outside the tolerance


def test_two_batch_estimator_without_replacement_is_exact_on_the_simplex_design():
    """Without replacement no pair repeats an example: the estimator returns tr(Sigma) with ddof 1 and
    |mean g|^2 - tr(Sigma)/n (what per_example_stats returns) exactly; with replacement it cannot."""
    x, y, theta = simplex_design()
    n = len(x)
    _, mean, _, var1 = closed_form(x, y, theta)
    model = nn.Linear(n, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    xt, yt = torch.tensor(x), torch.tensor(y)
    est = two_batch_stats(model, squared_error, xt, yt, 1, 2, 50, torch.Generator().manual_seed(0), replace=False)
    assert est["trace_sigma"] == pytest.approx(var1.sum(), rel=1e-9)
    assert est["grad_sq"] == pytest.approx(mean @ mean - var1.sum() / n, rel=1e-9)


def test_the_own_batch_size_probe_draws_with_replacement_from_the_training_split(linear_cell):
    """At the training split's own size (8) minibatches drawn without replacement are all the split: no spread at all.
    Drawn with replacement each parameter's minibatch mean has SD sqrt(var_ddof0 / B); on the simplex design every
    parameter's count of its example in a draw is Binomial(8, 1/8), so over 8 parameters and 400 draws the mean of
    sample SDs lies within about 1.4% (one SD) of c4(400) = 0.99937 times that: 6% is over 4 SDs."""
    x, y, theta = simplex_design(n=8)
    n = len(x)
    _, _, var0, var1 = closed_form(x, y, theta)
    _, spread = linear_cell(x, y, theta, n, spread_batch_sizes=[1, 2], spread_draws=400)
    own = spread[spread["probe"] == "own"].iloc[0]
    assert own["probe_batch_size"] == n and own["pool"] == f"training split ({n}), with replacement"
    exact = np.sqrt(var0 / n).mean()
    assert own["spread"] == pytest.approx(0.99937 * exact, rel=0.06)
    # the theory column uses the per-example variance (ddof 1) without the (n-1)/n factor: sqrt(n/(n-1)) high
    assert own["spread_theory"] == pytest.approx(np.sqrt(var1 / n).mean(), rel=1e-9)
    assert own["spread_theory"] == pytest.approx(exact * math.sqrt(n / (n - 1)), rel=1e-9)
    sweep = spread[spread["probe"] == "sweep"]
    assert sweep["probe_batch_size"].tolist() == [1, 2]
    assert (sweep["pool"] == f"evaluation subset ({n}), without replacement").all()


def test_spread_with_replacement_meets_the_exact_sd_with_its_n_minus_1_over_n_factor():
    """2000 draws at B = n = 6 of the simplex design: each parameter's count is Binomial(6, 1/6), so one SD of the mean
    over 6 parameters of sample SDs is about 0.7%, and 3% over 4 SDs; the theory line, sqrt(6/5) = 9.5% higher,
    lies far outside it."""
    x, y, theta = simplex_design(n=6)
    n = len(x)
    _, _, var0, var1 = closed_form(x, y, theta)
    model = nn.Linear(n, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    table = gradient_spread(model, squared_error, torch.tensor(x), torch.tensor(y), [n], 2000,
                            torch.Generator().manual_seed(1), replace=True, param_var=torch.tensor(var1))
    exact = np.sqrt(var0 / n).mean()
    c4 = 1 - 1 / (4 * 2000)
    assert table.loc[0, "spread"] == pytest.approx(c4 * exact, rel=0.03)
    assert table.loc[0, "spread_theory"] == pytest.approx(exact * math.sqrt(n / (n - 1)), rel=1e-9)
    assert abs(table.loc[0, "spread_theory"] / table.loc[0, "spread"] - 1) > 0.03


@pytest.mark.parametrize("replace", [True, False])
def test_spread_theory_is_the_enumerated_sd_of_a_minibatch_mean_times_sqrt_n_over_n_minus_1(replace):
    """Every minibatch of 2 of 6 examples enumerated (36 ordered pairs with replacement, 15 pairs without): the exact
    SD of each parameter's minibatch mean, averaged over parameters. The theory line is that times sqrt(N/(N-1))."""
    x, y, theta = generic_regression(n=6, seed=4)
    g, _, _, var1 = closed_form(x, y, theta)
    batches = itertools.product(range(6), repeat=2) if replace else itertools.combinations(range(6), 2)
    means = np.array([g[list(b)].mean(0) for b in batches])
    exact = means.std(0, ddof=0).mean()
    model = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(theta)[None])
    table = gradient_spread(model, squared_error, torch.tensor(x), torch.tensor(y), [2], 2,
                            torch.Generator().manual_seed(0), replace=replace, param_var=torch.tensor(var1))
    assert table.loc[0, "spread_theory"] == pytest.approx(exact * math.sqrt(6 / 5), rel=1e-9)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(c=st.floats(0.01, 100.0))
def test_rescaling_the_loss_by_c_scales_both_noise_terms_by_c_squared(c):
    """g_i -> c g_i: |G|^2 and tr(Sigma) scale by c^2 and B_simple is unchanged, for both estimators."""
    x, y, theta = generic_regression(n=16)
    model = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(theta)[None])
    xt, yt = torch.tensor(x), torch.tensor(y)

    def scaled(m, xb, yb):
        return c * squared_error(m, xb, yb)

    plain, times = per_example_stats(model, squared_error, xt, yt), per_example_stats(model, scaled, xt, yt)
    assert times.grad_sq == pytest.approx(c**2 * plain.grad_sq, rel=1e-9)
    assert times.trace_sigma == pytest.approx(c**2 * plain.trace_sigma, rel=1e-9)
    assert times.b_simple == pytest.approx(plain.b_simple, rel=1e-9)
    a = two_batch_stats(model, squared_error, xt, yt, 2, 8, 20, torch.Generator().manual_seed(5))
    b = two_batch_stats(model, scaled, xt, yt, 2, 8, 20, torch.Generator().manual_seed(5))
    assert b["grad_sq"] == pytest.approx(c**2 * a["grad_sq"], rel=1e-9)
    assert b["trace_sigma"] == pytest.approx(c**2 * a["trace_sigma"], rel=1e-9)
    assert b["b_simple"] == pytest.approx(a["b_simple"], rel=1e-9)
