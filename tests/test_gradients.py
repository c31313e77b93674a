"""Gradient noise statistics against closed forms (linear regression) and a plain autograd loop."""

import numpy as np
import pytest
import torch
from torch import nn

from batchlab.gradients import gradient_spread, log_log_slope, per_example_grads, per_example_stats, two_batch_stats


def squared_error(model, x, y):
    return 0.5 * (model(x).squeeze(-1) - y) ** 2


@pytest.fixture
def regression():
    """n=64, d=5 linear regression at a point away from the optimum, in float64."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64) + 0.3 * torch.randn(64, generator=gen, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.2, -1.0, 1.5, 0.7, 1.0]]))
    theta = model.weight.detach().numpy()[0]
    g = ((x.numpy() @ theta - y.numpy())[:, None]) * x.numpy()  # closed form g_i = r_i x_i
    return model, x, y, g


def test_per_example_stats_match_closed_form(regression):
    model, x, y, g = regression
    n = len(g)
    mean = g.mean(0)
    trace = ((g - mean) ** 2).sum() / (n - 1)
    grad_sq = mean @ mean - trace / n
    for chunk in (64, 7):
        stats = per_example_stats(model, squared_error, x, y, chunk_size=chunk)
        assert stats.trace_sigma == pytest.approx(trace, rel=1e-9)
        assert stats.grad_sq == pytest.approx(grad_sq, rel=1e-9)
        assert stats.b_simple == pytest.approx(trace / grad_sq, rel=1e-9)
        assert np.allclose(stats.param_var.numpy(), g.var(0, ddof=1))


def test_two_batch_estimator_matches_population_values(regression):
    """With replacement the draws are i.i.d. from the 64 examples, so the targets use ddof=0."""
    model, x, y, g = regression
    mean = g.mean(0)
    trace_pop = ((g - mean) ** 2).sum() / len(g)
    est = two_batch_stats(model, squared_error, x, y, 2, 16, 6000, torch.Generator().manual_seed(1))
    assert est["grad_sq"] == pytest.approx(mean @ mean, rel=0.05)
    assert est["trace_sigma"] == pytest.approx(trace_pop, rel=0.05)
    assert est["b_simple"] == pytest.approx(trace_pop / (mean @ mean), rel=0.1)


def test_spread_follows_inverse_square_root(regression):
    model, x, y, g = regression
    stats = per_example_stats(model, squared_error, x, y)
    sizes = [1, 2, 4, 8, 16]
    table = gradient_spread(
        model, squared_error, x, y, sizes, n_draws=400, generator=torch.Generator().manual_seed(2),
        replace=True, param_var=stats.param_var * (len(x) - 1) / len(x),
    )
    assert np.allclose(table["spread"], table["spread_theory"], rtol=0.1)
    assert log_log_slope(sizes, table["spread"]) == pytest.approx(-0.5, abs=0.05)


def test_spread_without_replacement_applies_finite_population_factor(regression):
    model, x, y, _ = regression
    stats = per_example_stats(model, squared_error, x, y)
    table = gradient_spread(
        model, squared_error, x, y, [32, 64], n_draws=300, generator=torch.Generator().manual_seed(3),
        param_var=stats.param_var,
    )
    assert table.loc[0, "spread"] == pytest.approx(table.loc[0, "spread_theory"], rel=0.12)
    assert table.loc[1, "spread"] < 1e-10 and table.loc[1, "spread_theory"] == 0.0


def test_vmap_gradients_equal_an_autograd_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 3, (10,))

    def ce(m, xb, yb):
        return nn.functional.cross_entropy(m(xb), yb, reduction="none")

    fast = torch.cat(list(per_example_grads(model, ce, x, y, chunk_size=3)))
    for i in range(10):
        model.zero_grad()
        ce(model, x[i : i + 1], y[i : i + 1]).sum().backward()
        slow = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert torch.allclose(fast[i], slow, atol=1e-12)
