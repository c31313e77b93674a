"""Distance from initialisation and sharpness, on models whose answers are known in closed form.

Sharpness is the largest algebraic Hessian eigenvalue (Lanczos), checked against numpy / torch
references in float64; a plain power iteration, written out below, shows what it replaced.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from batchlab.measure.geometry import distance_from_init, top_hessian_eigenvalue


def squared_error(model, x, y):
    return ((model(x).squeeze(-1) - y) ** 2)


class Quadratic(nn.Module):
    """A weight vector w whose loss 0.5 * w^T A w has Hessian A wherever it is evaluated."""

    def __init__(self, a: np.ndarray, seed: int = 0):
        super().__init__()
        self.a = torch.as_tensor(a, dtype=torch.float64)
        self.w = nn.Parameter(torch.randn(len(a), generator=torch.Generator().manual_seed(seed), dtype=torch.float64))

    def forward(self, x):
        return x


def quadratic_loss(model, x, y):
    return (0.5 * model.w @ model.a @ model.w).expand(len(x))


def symmetric_with(eigenvalues, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    a = q @ np.diag(eigenvalues) @ q.T
    return (a + a.T) / 2


def power_iteration(a: np.ndarray, iters: int = 2000, seed: int = 0) -> float:
    """The old method, as a reference: it converges to the eigenvalue of largest magnitude."""
    v = np.random.default_rng(seed).standard_normal(len(a))
    for _ in range(iters):
        v = a @ v / np.linalg.norm(a @ v)
    return float(v @ a @ v)


NO_DATA = (torch.zeros(4, 1), torch.zeros(4))


def test_sharpness_of_an_indefinite_quadratic_is_its_largest_algebraic_eigenvalue():
    a = symmetric_with([-5.0, -1.0, 0.5, 2.0, 3.0])
    value, iters, converged = top_hessian_eigenvalue(Quadratic(a), quadratic_loss, *NO_DATA, iters=20, tol=1e-10)
    assert value == pytest.approx(3.0, rel=1e-8) and converged and iters <= 5
    assert power_iteration(a) == pytest.approx(-5.0, rel=1e-8)  # what power iteration measured instead


def test_sharpness_of_a_positive_definite_quadratic():
    a = symmetric_with(np.random.default_rng(3).uniform(0.1, 10.0, 30), seed=3)
    value, iters, converged = top_hessian_eigenvalue(Quadratic(a), quadratic_loss, *NO_DATA, iters=60, tol=1e-12)
    assert value == pytest.approx(np.linalg.eigvalsh(a).max(), rel=1e-8) and converged and iters <= 30


def test_sharpness_of_least_squares_is_the_top_eigenvalue_of_2XtX_over_n():
    torch.manual_seed(0)
    n, d = 200, 6
    x = torch.randn(n, d, dtype=torch.float64) * torch.tensor([3.0, 1, 1, 0.5, 0.5, 0.1], dtype=torch.float64)
    y = torch.randn(n, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    value, iters, converged = top_hessian_eigenvalue(model, squared_error, x, y, iters=500, tol=1e-12)
    exact = np.linalg.eigvalsh(2 * (x.T @ x).numpy() / n).max()
    assert value == pytest.approx(exact, rel=1e-8)
    assert iters < 500 and converged


def test_sharpness_does_not_depend_on_where_a_quadratic_is_evaluated():
    torch.manual_seed(1)
    x, y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    model = nn.Linear(3, 1).double()
    before, _, _ = top_hessian_eigenvalue(model, squared_error, x, y, iters=300, tol=1e-12)
    with torch.no_grad():
        model.weight.add_(5.0)
    after, _, _ = top_hessian_eigenvalue(model, squared_error, x, y, iters=300, tol=1e-12)
    design = torch.cat([x, torch.ones(50, 1, dtype=torch.float64)], 1)
    exact = np.linalg.eigvalsh(2 * (design.T @ design).numpy() / 50).max()
    assert before == pytest.approx(exact, rel=1e-8) and after == pytest.approx(exact, rel=1e-8)


def test_sharpness_at_a_saddle_is_the_positive_curvature_not_the_dominant_negative_one():
    """Eigenvalues 1 and -4: the old power iteration returned -4 (largest magnitude, kept its sign); the
    largest algebraic eigenvalue, the curvature that sharpness of a minimum refers to, is 1."""

    class Saddle(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))

        def forward(self, x):
            return x

    def loss(model, x, y):  # 0.5 * (1 * w0^2 - 4 * w1^2): eigenvalues 1 and -4
        return (0.5 * (model.w[0] ** 2 - 4 * model.w[1] ** 2)).expand(len(x))

    value, iters, converged = top_hessian_eigenvalue(Saddle(), loss, *NO_DATA, iters=200, tol=1e-12)
    assert value == pytest.approx(1.0, rel=1e-8) and converged and iters <= 2


def _mlp_problem():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    x, y = torch.randn(40, 3, dtype=torch.float64), torch.randn(40, dtype=torch.float64)
    return model, x, y


def test_sharpness_of_an_mlp_matches_the_full_hessian():
    model, x, y = _mlp_problem()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def mean_loss(theta):
        params = {n: t.view(s) for n, t, s in zip(names, theta.split([s.numel() for s in shapes]), shapes)}
        return ((functional_call(model, params, (x,)).squeeze(-1) - y) ** 2).mean()

    eigenvalues = np.linalg.eigvalsh(torch.autograd.functional.hessian(mean_loss, flat).numpy())
    value, iters, converged = top_hessian_eigenvalue(model, squared_error, x, y, iters=100, tol=1e-12)
    assert value == pytest.approx(eigenvalues.max(), rel=1e-6) and converged and iters <= len(flat)


def test_too_few_iterations_on_a_spread_spectrum_are_not_converged():
    a = symmetric_with(np.logspace(-3, 2, 50), seed=5)
    value, iters, converged = top_hessian_eigenvalue(Quadratic(a), quadratic_loss, *NO_DATA, iters=2, tol=1e-3)
    assert iters == 2 and not converged
    assert value <= np.linalg.eigvalsh(a).max() * (1 + 1e-12)  # a Ritz value never exceeds the top eigenvalue


def test_sharpness_is_deterministic_for_a_seed():
    model, x, y = _mlp_problem()
    first = top_hessian_eigenvalue(model, squared_error, x, y, iters=8, tol=1e-3, seed=7)
    second = top_hessian_eigenvalue(model, squared_error, x, y, iters=8, tol=1e-3, seed=7)
    assert first == second and isinstance(first.eigenvalue, float) and isinstance(first.converged, bool)
    model32 = _mlp_problem()[0].float()
    a = top_hessian_eigenvalue(model32, squared_error, x.float(), y.float(), iters=8, tol=1e-3, seed=7)
    b = top_hessian_eigenvalue(model32, squared_error, x.float(), y.float(), iters=8, tol=1e-3, seed=7)
    assert a == b


def test_distance_from_init():
    model = nn.Linear(4, 2)
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert distance_from_init(initial, model) == 0.0
    with torch.no_grad():
        model.weight.add_(0.5)  # 8 entries moved by 0.5
        model.bias.sub_(1.0)  # 2 entries moved by 1
    assert distance_from_init(initial, model) == pytest.approx(math.sqrt(8 * 0.25 + 2 * 1.0))
