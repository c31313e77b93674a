"""Gradient noise statistics against closed forms (linear regression) and a plain autograd loop."""

import numpy as np
import pytest
import torch
from torch import nn

from batchlab.measure.gradients import (
    draw,
    flatten_grads,
    gradient_spread,
    log_log_slope,
    minibatch_grad,
    per_example_grads,
    per_example_stats,
    two_batch_stats,
)


def squared_error(model, x, y):
    return 0.5 * (model(x).squeeze(-1) - y) ** 2


@pytest.fixture
def regression():
    """n=64, d=5 linear regression at a point away from the optimum, in float64, with closed-form g_i."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    w = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    y = x @ w + 0.3 * torch.randn(64, generator=gen, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.2, -1.0, 1.5, 0.7, 1.0]]))
    theta = model.weight.detach().numpy()[0]
    g = ((x.numpy() @ theta - y.numpy())[:, None]) * x.numpy()  # g_i = (x_i^T theta - y_i) x_i
    return model, x, y, g


def spoke(n, a, s):
    """g_i = a e_0 + s e_i (i = 1..n) in R^(n+1): |mean g|^2 = a^2 + s^2/n, tr(Sigma) = s^2 (ddof=1), and every
    minibatch of B distinct examples has |G_B|^2 = a^2 + s^2/B exactly. Zero weights and y = -1 make g_i = x_i."""
    x = torch.cat([torch.full((n, 1), a, dtype=torch.float64), s * torch.eye(n, dtype=torch.float64)], dim=1)
    model = nn.Linear(n + 1, 1, bias=False).double()
    nn.init.zeros_(model.weight)
    return model, x, -torch.ones(n, dtype=torch.float64), x.numpy().copy()


def test_per_example_stats_match_closed_form(regression):
    model, x, y, g = regression
    n = len(g)
    mean = g.mean(0)
    trace = ((g - mean) ** 2).sum() / (n - 1)
    grad_sq = mean @ mean - trace / n
    for chunk in (64, 7, 1000):  # one chunk; 7 does not divide 64; larger than n
        stats = per_example_stats(model, squared_error, x, y, chunk_size=chunk)
        assert stats.n == n
        assert stats.trace_sigma == pytest.approx(trace, rel=1e-6)
        assert stats.grad_sq == pytest.approx(grad_sq, rel=1e-6)
        assert stats.mean_grad_sq == pytest.approx(mean @ mean, rel=1e-6)
        assert stats.b_simple == pytest.approx(trace / grad_sq, rel=1e-6)
        np.testing.assert_allclose(stats.mean_grad.numpy(), mean, rtol=1e-6)
        np.testing.assert_allclose(stats.param_var.numpy(), g.var(0, ddof=1), rtol=1e-6)
        assert stats.mean_grad.dtype == stats.param_var.dtype == torch.float64


def test_two_batch_estimator_with_replacement_matches_population_values():
    """Draws with replacement are i.i.d. from the n examples, so the targets are that empirical distribution's
    |G|^2 = |mean g|^2 and tr(Sigma) with ddof=0 (ddof=1 is n/(n-1) = 6.7% higher here). On the spoke population
    |G_1|^2 = a^2 + s^2 for every draw and |G_2|^2 = a^2 + s^2 (1 + [i=j]) / 2, so the estimates are exactly
    a^2 + s^2 q and s^2 (1 - q), with q the fraction of the pairs drawn with i=j: Binomial(draws, 1/n) / draws."""
    n, a, s, draws = 16, 2.0, 1.0, 2000
    model, x, y, g = spoke(n, a, s)
    mean = g.mean(0)
    trace_pop = ((g - mean) ** 2).sum() / n
    est = two_batch_stats(model, squared_error, x, y, 1, 2, draws, torch.Generator().manual_seed(1))
    # 5 SDs of q, sqrt((1/n)(1 - 1/n) / draws) = 0.0054: 2.9% of tr(Sigma), 0.7% of |G|^2; the ddof slips are 11 SDs.
    tol = 5 * np.sqrt((1 / n) * (1 - 1 / n) / draws)
    assert est["norm_sq_small"] == pytest.approx(a**2 + s**2, rel=1e-12)
    assert est["grad_sq"] == pytest.approx(mean @ mean, abs=s**2 * tol)
    assert est["trace_sigma"] == pytest.approx(trace_pop, abs=s**2 * tol)
    # B_simple = (tr - s^2 dq) / (|G|^2 + s^2 dq), dq = q - 1/n, so |dq| <= tol brackets it: +-3.6%, the slip is 6.7%.
    bound = s**2 * tol
    assert (trace_pop - bound) / (mean @ mean + bound) <= est["b_simple"] <= (trace_pop + bound) / (mean @ mean - bound)


def test_two_batch_estimator_without_replacement_matches_per_example_stats():
    """Without replacement E|G_B|^2 = |mean g|^2 + tr(Sigma_ddof1)(1/B - 1/n), so the formulas target
    exactly what per_example_stats returns. On the spoke population every minibatch of distinct examples has
    |G_B|^2 = a^2 + s^2/B, so there is no sampling error: both equal a^2 and s^2 to rounding."""
    model, x, y, _ = spoke(16, 2.0, 1.0)
    exact = per_example_stats(model, squared_error, x, y)
    assert exact.grad_sq == pytest.approx(4.0, rel=1e-12) and exact.trace_sigma == pytest.approx(1.0, rel=1e-12)
    est = two_batch_stats(model, squared_error, x, y, 2, 8, 50, torch.Generator().manual_seed(4), replace=False)
    assert est["grad_sq"] == pytest.approx(exact.grad_sq, rel=1e-9)
    assert est["trace_sigma"] == pytest.approx(exact.trace_sigma, rel=1e-9)


def test_spread_follows_inverse_square_root(regression):
    """With replacement the spread's exact variance is the population (ddof=0) variance over B, so
    the theory gets param_var * (n-1)/n; 400 draws put each parameter's std within a few percent."""
    model, x, y, _ = regression
    stats = per_example_stats(model, squared_error, x, y)
    sizes = [1, 2, 4, 8, 16]
    table = gradient_spread(
        model, squared_error, x, y, sizes, n_draws=400, generator=torch.Generator().manual_seed(2),
        replace=True, param_var=stats.param_var * (len(x) - 1) / len(x),
    )
    assert list(table.columns) == ["batch_size", "spread", "spread_theory", "n_draws"]
    assert table["batch_size"].tolist() == sizes and (table["n_draws"] == 400).all()
    np.testing.assert_allclose(table["spread"], table["spread_theory"], rtol=0.1)
    assert log_log_slope(sizes, table["spread"]) == pytest.approx(-0.5, abs=0.05)
    assert log_log_slope(sizes, table["spread_theory"]) == pytest.approx(-0.5, abs=1e-12)


def test_spread_without_replacement_applies_finite_population_factor(regression):
    """Without replacement the exact variance of a minibatch mean is var_ddof0 (N-B) / ((N-1) B), from the
    closed-form g_i; the theory line is that times N/(N-1) (module docstring). The measured spread is checked on
    the spoke population at B=N/2, where each spoke's minibatch mean is s/B times a fair coin (in the batch or not)."""
    model, x, y, g = regression
    stats = per_example_stats(model, squared_error, x, y)
    table = gradient_spread(
        model, squared_error, x, y, [32, 64], n_draws=10, generator=torch.Generator().manual_seed(3),
        param_var=stats.param_var,
    )
    exact = np.sqrt(g.var(0, ddof=0) * (64 - 32) / (63 * 32)).mean()
    assert table.loc[0, "spread_theory"] == pytest.approx(exact * np.sqrt(64 / 63), rel=1e-9)
    # B=N: every draw is the full set, so there is no spread at all.
    assert table.loc[1, "spread"] < 1e-10 and table.loc[1, "spread_theory"] == 0.0
    with pytest.raises(ValueError, match="exceeds the 64 evaluation examples"):
        gradient_spread(model, squared_error, x, y, [65])

    n, s, draws = 16, 1.0, 300
    model, x, y, g = spoke(n, 2.0, s)
    gen = torch.Generator().manual_seed(3)
    table = gradient_spread(model, squared_error, x, y, [n // 2], n_draws=draws, generator=gen)
    exact = np.sqrt(g.var(0, ddof=0) * (n - n // 2) / ((n - 1) * (n // 2))).mean()
    # A coin's sample std over K draws is s/(2B) sqrt(K/(K-1)) sqrt(1 - 4 d^2), d = heads/K - 1/2 with var 1/(4K):
    # relative error 1/(2K) - 2 d^2, mean 0, SD sqrt(2)/(2K) per spoke, sqrt(2/n)/(2K) = 0.06% over n; 5 SDs = 0.3%.
    assert table.loc[0, "spread"] == pytest.approx(exact, rel=5 * np.sqrt(2 / n) / (2 * draws))


def test_spread_is_mean_over_parameters_of_std_across_draws(regression):
    """The exact definition, rebuilt from closed-form g_i on the same seeded draws: each parameter's
    std (ddof=1) of the minibatch gradient across draws, then the mean over parameters."""
    model, x, y, g = regression
    for replace in (False, True):
        table = gradient_spread(model, squared_error, x, y, [3, 8], n_draws=7, generator=torch.Generator().manual_seed(5), replace=replace)
        gen = torch.Generator().manual_seed(5)
        for b, spread in zip([3, 8], table["spread"]):
            batches = np.stack([g[draw(len(g), b, gen, replace).numpy()].mean(0) for _ in range(7)])
            assert spread == pytest.approx(batches.std(0, ddof=1).mean(), rel=1e-10)


def test_spread_without_param_var_has_no_theory(regression):
    model, x, y, _ = regression
    table = gradient_spread(model, squared_error, x, y, [4], generator=torch.Generator().manual_seed(0))
    assert table.loc[0, "n_draws"] == 10 and table.loc[0, "spread"] > 0 and np.isnan(table.loc[0, "spread_theory"])


def test_vmap_gradients_equal_an_autograd_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 3, (10,))

    def ce(m, xb, yb):
        return nn.functional.cross_entropy(m(xb), yb, reduction="none")

    fast = torch.cat(list(per_example_grads(model, ce, x, y, chunk_size=3)))
    assert fast.shape == (10, sum(p.numel() for p in model.parameters()))
    for i in range(10):
        model.zero_grad()
        ce(model, x[i : i + 1], y[i : i + 1]).sum().backward()
        slow = torch.cat([p.grad.flatten() for p in model.parameters()])
        torch.testing.assert_close(fast[i], slow, rtol=1e-10, atol=1e-12)
    # The mean of per-example gradients is the mean-reduced minibatch gradient.
    torch.testing.assert_close(fast.mean(0), minibatch_grad(model, ce, x, y), rtol=1e-10, atol=1e-12)


def test_only_trainable_parameters_count():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    model[0].requires_grad_(False)
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    stats = per_example_stats(model, squared_error, x, y, chunk_size=4)
    assert stats.mean_grad.shape == (4 + 1,)
    with torch.no_grad():  # a caller's no_grad must not break the minibatch path
        assert minibatch_grad(model, squared_error, x, y).shape == (5,)


def test_reduced_loss_is_rejected(regression):
    model, x, y, _ = regression

    def mean_loss(m, xb, yb):
        return squared_error(m, xb, yb).mean()

    with pytest.raises(ValueError, match="per-example losses"):
        minibatch_grad(model, mean_loss, x, y)
    with pytest.raises(ValueError, match="per-example losses"):
        per_example_stats(model, mean_loss, x, y)


def test_gradients_written_into_a_float64_buffer_are_the_concatenation_converted():
    """flatten_grads into a buffer: each gradient in its slice, the same values as cat(...).double(); rows too."""
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen), torch.randn(2, 2, 2, generator=gen)]
    out = torch.full((25,), float("nan"), dtype=torch.float64)
    assert torch.equal(flatten_grads(grads, out=out), flatten_grads(grads).double())
    rows = [torch.randn(6, 3, 4, generator=gen), torch.randn(6, 5, generator=gen)]
    block = torch.empty(6, 17, dtype=torch.float64)
    assert torch.equal(flatten_grads(rows, batch_dims=1, out=block), flatten_grads(rows, batch_dims=1).double())
    with pytest.raises(ValueError, match="17 values per row, the buffer 18"):
        flatten_grads(rows, batch_dims=1, out=torch.empty(6, 18, dtype=torch.float64))
