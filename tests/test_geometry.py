"""Distance from initialisation and sharpness, on models whose answers are known in closed form."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from batchlab.measure.geometry import distance_from_init, top_hessian_eigenvalue


def squared_error(model, x, y):
    return ((model(x).squeeze(-1) - y) ** 2)


def test_sharpness_of_least_squares_is_the_top_eigenvalue_of_2XtX_over_n():
    torch.manual_seed(0)
    n, d = 200, 6
    x = torch.randn(n, d, dtype=torch.float64) * torch.tensor([3.0, 1, 1, 0.5, 0.5, 0.1], dtype=torch.float64)
    y = torch.randn(n, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    value, iters = top_hessian_eigenvalue(model, squared_error, x, y, iters=500, tol=1e-12)
    exact = np.linalg.eigvalsh(2 * (x.T @ x).numpy() / n).max()
    assert value == pytest.approx(exact, rel=1e-8)
    assert iters < 500


def test_sharpness_does_not_depend_on_where_a_quadratic_is_evaluated():
    torch.manual_seed(1)
    x, y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    model = nn.Linear(3, 1).double()
    before, _ = top_hessian_eigenvalue(model, squared_error, x, y, iters=300, tol=1e-12)
    with torch.no_grad():
        model.weight.add_(5.0)
    after, _ = top_hessian_eigenvalue(model, squared_error, x, y, iters=300, tol=1e-12)
    design = torch.cat([x, torch.ones(50, 1, dtype=torch.float64)], 1)
    exact = np.linalg.eigvalsh(2 * (design.T @ design).numpy() / 50).max()
    assert before == pytest.approx(exact, rel=1e-8) and after == pytest.approx(exact, rel=1e-8)


def test_sharpness_keeps_the_sign_of_a_dominant_negative_curvature():
    class Saddle(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))

        def forward(self, x):
            return x

    def loss(model, x, y):  # 0.5 * (1 * w0^2 - 4 * w1^2): eigenvalues 1 and -4
        return (0.5 * (model.w[0] ** 2 - 4 * model.w[1] ** 2)).expand(len(x))

    value, _ = top_hessian_eigenvalue(Saddle(), loss, torch.zeros(4, 1), torch.zeros(4), iters=200, tol=1e-12)
    assert value == pytest.approx(-4.0, rel=1e-8)


def test_distance_from_init():
    model = nn.Linear(4, 2)
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert distance_from_init(initial, model) == 0.0
    with torch.no_grad():
        model.weight.add_(0.5)  # 8 entries moved by 0.5
        model.bias.sub_(1.0)  # 2 entries moved by 1
    assert distance_from_init(initial, model) == pytest.approx(math.sqrt(8 * 0.25 + 2 * 1.0))
