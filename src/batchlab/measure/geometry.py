"""Where training ended: distance travelled from the initial weights, and the sharpness of the minimum.

- Distance from initialisation: the L2 norm of theta - theta_0 over all trainable parameters. Hoffer et
  al. (2017) find it grows roughly with log(updates), so at a fixed data budget large batches (fewer
  updates) travel less far.
- Sharpness: the largest algebraic eigenvalue of the Hessian of the mean training loss on a fixed
  subset, by Lanczos with full reorthogonalisation on Hessian-vector products (double backward).
  Keskar et al. (2017) claim large batches end in sharper minima. At a minimum the Hessian is positive
  semidefinite and this equals the eigenvalue of largest magnitude; elsewhere power iteration would
  return a negative eigenvalue of larger magnitude (a saddle's escape direction, not the curvature
  of a minimum), which is why it is not used. Whether the Ritz value converged (residual bound within
  the tolerance) is returned and recorded per run, so that only converged values are scored.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from batchlab.measure.gradients import SampleLoss


def distance_from_init(initial: dict[str, Tensor], model: nn.Module) -> float:
    """||theta - theta_0||_2 over the model's trainable parameters (float64 accumulation)."""
    total = 0.0
    for name, p in model.named_parameters():
        if p.requires_grad:
            total += float(((p.detach().double().cpu() - initial[name].double().cpu()) ** 2).sum())
    return math.sqrt(total)


def _hvp_fn(model: nn.Module, sample_loss: SampleLoss, x: Tensor, y: Tensor):
    params = [p for p in model.parameters() if p.requires_grad]
    loss = sample_loss(model, x, y).mean()
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def hvp(vs: list[Tensor]) -> list[Tensor]:
        dot = sum((g * v).sum() for g, v in zip(grads, vs))
        return list(torch.autograd.grad(dot, params, retain_graph=True))

    return params, hvp


class TopEigenvalue(NamedTuple):
    """The largest algebraic Hessian eigenvalue found, the Hessian-vector products it took, and whether
    its residual bound met the tolerance (an invariant Krylov subspace counts as converged)."""

    eigenvalue: float
    iters: int
    converged: bool


def top_hessian_eigenvalue(
    model: nn.Module,
    sample_loss: SampleLoss,
    x: Tensor,
    y: Tensor,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
) -> TopEigenvalue:
    """Largest algebraic Hessian eigenvalue of the mean loss on (x, y), by Lanczos on Hessian-vector products.

    Starts from a seeded random direction and keeps the whole Krylov basis (`iters` is a few tens), each
    new vector reorthogonalised against all of it twice; the tridiagonal coefficients and the vector
    arithmetic are in float64, the basis in the parameters' dtype. After step j >= 2 the largest
    eigenvalue theta of the j x j tridiagonal T_j, with eigenvector s, has residual bound
    |beta_j * s[-1]| = ||H y - theta y|| for its Ritz vector y; it has converged when that bound is at
    most tol * max(|theta|, 1e-12). It stops there, on an invariant subspace (beta_j ~ 0, or the
    Krylov space is the whole parameter space), or after `iters` products, one per step.
    """
    params, hvp = _hvp_fn(model, sample_loss, x, y)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]
    norm = torch.sqrt(sum((t * t).sum() for t in v))
    v = [t / norm for t in v]
    shapes, sizes = [p.shape for p in params], [p.numel() for p in params]
    dim = sum(sizes)

    def unflatten(flat: Tensor) -> list[Tensor]:
        return [t.view(shape) for t, shape in zip(flat.split(sizes), shapes)]

    basis = [torch.cat([t.reshape(-1) for t in v])]  # orthonormal Krylov basis, parameters' dtype
    dtype = basis[0].dtype
    eps = torch.finfo(dtype).eps
    alphas: list[float] = []
    betas: list[float] = []
    top = 0.0
    for j in range(1, iters + 1):
        q = basis[-1].double()
        w = torch.cat([t.reshape(-1) for t in hvp(unflatten(basis[-1]))]).double()
        alpha = float(torch.dot(q, w))
        w = w - alpha * q
        if betas:
            w = w - betas[-1] * basis[-2].double()
        for _ in range(2):  # full reorthogonalisation (modified Gram-Schmidt), twice is enough
            for stored in basis:
                b = stored.double()
                w = w - float(torch.dot(b, w)) * b
        beta = float(torch.linalg.vector_norm(w))
        alphas.append(alpha)
        tri = np.diag(np.array(alphas)) + np.diag(np.array(betas), 1) + np.diag(np.array(betas), -1)
        theta, s = np.linalg.eigh(tri)
        top = float(theta[-1])
        scale = float(np.abs(theta).max())
        if beta == 0.0 or beta <= 64 * eps * scale or j == dim:  # invariant subspace: the Ritz values are exact
            return TopEigenvalue(top, j, True)
        if j >= 2 and abs(beta * float(s[-1, -1])) <= tol * max(abs(top), 1e-12):
            return TopEigenvalue(top, j, True)
        betas.append(beta)
        basis.append((w / beta).to(dtype))
    return TopEigenvalue(top, iters, False)
