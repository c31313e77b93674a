"""Per-sample training losses: one function shape, `loss(model, x, y) -> [B]`, for every model.

Per-sample (unreduced) losses serve the trainer (which takes the mean) and the gradient-noise
measurements (which need each example's own gradient).
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn
from torch.nn import functional as F

from batchlab.config import is_classifier
from batchlab.nets.contrastive import InfoNCELoss
from batchlab.nets.models import curvature

SampleLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]


def _bce_reconstruction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(model(x), x, reduction="none").flatten(1).mean(1)


def _mse_reconstruction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return (model(x) - x).pow(2).flatten(1).mean(1)


def _mse_sigmoid_reconstruction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return (model(x).sigmoid() - x).pow(2).flatten(1).mean(1)


def _cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(model(x), y, reduction="none")


def _half_squared_error(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return 0.5 * (model(x) - y).pow(2)


class HalfCurvatureSquaredError:
    """The NQM quadratic's per-sample loss 0.5 sum_j h_j (prediction_j - z_j)^2, h_j = j^-power: a sum over the
    coordinates, not a mean, so that its gradient in w is H (w - z). The label y is not read."""

    def __init__(self, power: float):
        self.power = float(power)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        h = curvature(x.shape[-1], self.power, x)
        return 0.5 * (h * (model(x) - x).pow(2)).sum(-1)


def sample_loss_for(spec, seed: int = 0) -> SampleLoss:
    """Per-sample loss for a model spec: cross-entropy for classifiers, InfoNCE for contrastive encoders
    (augmentations drawn from a generator seeded with `seed`), reconstruction (mean over features) for
    autoencoders, 0.5 (prediction - y)^2 for linear regression (the noisy quadratic model's regression form),
    0.5 sum_j h_j (w_j - z_j)^2 for the quadratic (its additive form). A factory model's `task` says which of
    cross-entropy and reconstruction it trains with."""
    if spec.kind == "contrastive":
        return InfoNCELoss(spec.temperature, spec.shift, spec.scale, spec.noise, seed)
    if spec.kind == "linear":
        return _half_squared_error
    if spec.kind == "quadratic":
        return HalfCurvatureSquaredError(spec.power)
    if is_classifier(spec):
        return _cross_entropy
    if spec.loss == "bce":
        return _bce_reconstruction
    return _mse_sigmoid_reconstruction if spec.output == "sigmoid" else _mse_reconstruction
