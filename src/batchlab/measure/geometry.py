"""Where training ended: distance travelled from the initial weights, and the sharpness of the minimum.

- Distance from initialisation: the L2 norm of theta - theta_0 over all trainable parameters. Hoffer et
  al. (2017) find it grows roughly with log(updates), so at a fixed data budget large batches (fewer
  updates) travel less far.
- Sharpness: the eigenvalue of largest magnitude of the Hessian of the mean training loss on a fixed
  subset, by power iteration on Hessian-vector products (double backward). Keskar et al. (2017) claim
  large batches end in sharper minima. At a minimum the Hessian is positive semidefinite and this is
  its largest eigenvalue; elsewhere it may be a negative eigenvalue of larger magnitude, kept as is.
"""

from __future__ import annotations

import math

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


def top_hessian_eigenvalue(
    model: nn.Module,
    sample_loss: SampleLoss,
    x: Tensor,
    y: Tensor,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
) -> tuple[float, int]:
    """Largest-magnitude Hessian eigenvalue of the mean loss on (x, y), and the iterations it took.

    Power iteration from a seeded random direction, stopped when the Rayleigh quotient changes by less
    than tol (relative) or after `iters` products.
    """
    params, hvp = _hvp_fn(model, sample_loss, x, y)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]
    norm = torch.sqrt(sum((t * t).sum() for t in v))
    v = [t / norm for t in v]
    eigenvalue = 0.0
    for i in range(1, iters + 1):
        hv = hvp(v)
        new = float(sum((a * b).sum() for a, b in zip(hv, v)))  # Rayleigh quotient v.Hv, |v| = 1
        norm = torch.sqrt(sum((t * t).sum() for t in hv))
        if float(norm) == 0.0:
            return 0.0, i
        v = [t / norm for t in hv]
        if i > 1 and abs(new - eigenvalue) <= tol * max(abs(new), 1e-12):
            return new, i
        eigenvalue = new
    return eigenvalue, iters
