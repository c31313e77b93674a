"""Per-sample training losses: one function shape, `loss(model, x, y) -> [B]`, for every model.

Per-sample (unreduced) losses serve the trainer (which takes the mean) and the gradient-noise
measurements (which need each example's own gradient).
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn
from torch.nn import functional as F

from batchlab.config import CLASSIFIER_KINDS
from batchlab.nets.contrastive import InfoNCELoss

SampleLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]


def _bce_reconstruction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(model(x), x, reduction="none").flatten(1).mean(1)


def _mse_reconstruction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return (model(x) - x).pow(2).flatten(1).mean(1)


def _mse_sigmoid_reconstruction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return (model(x).sigmoid() - x).pow(2).flatten(1).mean(1)


def _cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(model(x), y, reduction="none")


def sample_loss_for(spec, seed: int = 0) -> SampleLoss:
    """Per-sample loss for a model spec: cross-entropy for classifiers, InfoNCE for contrastive encoders
    (augmentations drawn from a generator seeded with `seed`), reconstruction (mean over features) for
    autoencoders."""
    if spec.kind == "contrastive":
        return InfoNCELoss(spec.temperature, spec.shift, spec.scale, spec.noise, seed)
    if spec.kind in CLASSIFIER_KINDS:
        return _cross_entropy
    if spec.loss == "bce":
        return _bce_reconstruction
    return _mse_sigmoid_reconstruction if spec.output == "sigmoid" else _mse_reconstruction
