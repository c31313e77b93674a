"""Autoencoders, classifiers, linear regression and the NQM quadratic compared across batch sizes: small, plain,
free of BatchNorm.

BatchNorm is left out on purpose: its statistics change with the batch and would confound
the very variable the studies measure.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from batchlab.config import (
    CNNClassifier, ContrastiveEncoder, ConvAE, DenseAE, DiagonalQuadratic, LinearRegression, MLPClassifier,
    PythonModel,
)
from batchlab.nets.factory import build_factory_model


class DenseAutoencoder(nn.Module):
    """Dense layers with ReLU down to a linear latent, mirrored decoder (the EHR model)."""

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], latent: int):
        super().__init__()
        n_in = math.prod(in_shape)
        widths = [n_in, *hidden]
        enc: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(nn.Flatten(), *enc, nn.Linear(widths[-1], latent))
        dec: list[nn.Module] = [nn.Linear(latent, widths[-1])]
        for a, b in zip(widths[:0:-1], widths[-2::-1]):
            dec += [nn.ReLU(), nn.Linear(a, b)]
        self.decoder = nn.Sequential(*dec, nn.Unflatten(1, in_shape))

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction before the output activation (logits for a sigmoid output)."""
        return self.decoder(self.encoder(x))


class ConvAutoencoder(nn.Module):
    """Stride-2 conv encoder to a linear latent and a transposed-conv decoder, for 1-D or 2-D inputs.

    Inputs whose length is not a multiple of 2**len(channels) are zero-padded on the way in
    and cropped on the way out, so any signal or image size works.
    """

    def __init__(self, in_shape: tuple[int, ...], channels: list[int], latent: int):
        super().__init__()
        if len(in_shape) not in (2, 3):
            raise ValueError(f"conv_ae needs [C, L] signals or [C, H, W] images, got sample shape {in_shape}")
        self.in_shape = in_shape
        self.ndim = len(in_shape) - 1
        conv, deconv = (nn.Conv1d, nn.ConvTranspose1d) if self.ndim == 1 else (nn.Conv2d, nn.ConvTranspose2d)
        factor = 2 ** len(channels)
        self.padded = tuple(math.ceil(s / factor) * factor for s in in_shape[1:])
        inner = tuple(s // factor for s in self.padded)
        widths = [in_shape[0], *channels]
        enc: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [conv(a, b, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        flat = channels[-1] * math.prod(inner)
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(flat, latent))
        dec: list[nn.Module] = [nn.Linear(latent, flat), nn.Unflatten(1, (channels[-1], *inner))]
        for a, b in zip(widths[:0:-1], widths[-2::-1]):
            dec += [nn.ReLU(), deconv(a, b, kernel_size=4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def _pad(self, x: Tensor) -> Tensor:
        pad: list[int] = []
        for size, target in zip(reversed(x.shape[2:]), reversed(self.padded)):
            pad += [0, target - size]
        return F.pad(x, pad) if any(pad) else x

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(self._pad(x))

    def forward(self, x: Tensor) -> Tensor:
        out = self.decoder(self.encode(x))
        return out[(..., *(slice(0, s) for s in self.in_shape[1:]))]


class _Classifier(nn.Module):
    """An `encoder` to the embedding and a linear `head` to class logits; subclasses build the encoder."""

    encoder: nn.Module
    head: nn.Linear

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


class MLPNet(_Classifier):
    """ReLU layers to a `latent`-wide embedding (also ReLU), then a linear head giving class logits."""

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], latent: int, n_classes: int):
        super().__init__()
        widths = [math.prod(in_shape), *hidden, latent]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(latent, n_classes)


class CNNNet(_Classifier):
    """Stride-2 convs (1-D or 2-D, from the data's shape), a ReLU embedding layer, a linear head."""

    def __init__(self, in_shape: tuple[int, ...], channels: list[int], latent: int, n_classes: int):
        super().__init__()
        if len(in_shape) not in (2, 3):
            raise ValueError(f"cnn needs [C, L] signals or [C, H, W] images, got sample shape {in_shape}")
        conv = nn.Conv1d if len(in_shape) == 2 else nn.Conv2d
        widths = [in_shape[0], *channels]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [conv(a, b, kernel_size=3, stride=2, padding=1), nn.ReLU()]
        size = list(in_shape[1:])
        for _ in channels:
            size = [(s + 1) // 2 for s in size]  # kernel 3, stride 2, padding 1
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels[-1] * math.prod(size), latent), nn.ReLU())
        self.head = nn.Linear(latent, n_classes)


class ContrastiveNet(nn.Module):
    """A CNN trunk to the `latent` representation, and a projection head the contrastive loss compares."""

    def __init__(self, in_shape: tuple[int, ...], channels: list[int], latent: int, projection: int):
        super().__init__()
        self.encoder = CNNNet(in_shape, channels, latent, n_classes=1).encoder
        self.projector = nn.Sequential(nn.Linear(latent, latent), nn.ReLU(), nn.Linear(latent, projection))

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.encoder(x))


class LinearRegressionNet(nn.Module):
    """w.x without bias, from w = 0: the learner of the noisy quadratic model's regression form (batchlab.analysis.nqm)."""

    def __init__(self, in_shape: tuple[int, ...]):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(math.prod(in_shape), 1, bias=False)
        nn.init.zeros_(self.linear.weight)

    def encode(self, x: Tensor) -> Tensor:
        """The prediction as a one-wide embedding [B, 1]."""
        return self.linear(self.flatten(x))

    def forward(self, x: Tensor) -> Tensor:
        """The prediction [B], one per sample, as the regression loss compares it with y."""
        return self.encode(x).squeeze(-1)


def curvature(d: int, power: float, like: Tensor) -> Tensor:
    """h_j = j^-power, j = 1..d (batchlab.analysis.nqm.spectrum), computed in float64 and cast to like's dtype and
    device: recomputed where needed rather than kept as a buffer, which the batched engine refuses."""
    return (torch.arange(1, d + 1, dtype=torch.float64, device=like.device) ** -float(power)).to(like.dtype)


class DiagonalQuadraticNet(nn.Module):
    """The noisy quadratic model's learner (additive form): one parameter w in R^d, from w = 0.

    forward(z) is the prediction of every sample, w itself [B, d]; the loss 0.5 sum_j h_j (w_j - z_j)^2
    (batchlab.nets.objectives) weights it by the curvature. No buffers: h is recomputed from `power`.
    """

    def __init__(self, in_shape: tuple[int, ...], power: float):
        super().__init__()
        if len(in_shape) != 1:
            raise ValueError(f"the quadratic model takes flat samples [d], got shape {in_shape}")
        self.power = float(power)
        self.w = nn.Parameter(torch.zeros(in_shape[0]))

    def forward(self, z: Tensor) -> Tensor:
        """w for every sample [B, d] (under vmap too: an expand, no copy)."""
        return self.w.expand(z.shape[0], -1)

    def encode(self, z: Tensor) -> Tensor:
        """Each sample's loss 0.5 sum_j h_j (w_j - z_j)^2 as a one-wide embedding [B, 1]."""
        h = curvature(z.shape[-1], self.power, z)
        return 0.5 * (h * (self(z) - z).pow(2)).sum(-1, keepdim=True)


def build_model(spec, in_shape: tuple[int, ...], n_classes: int = 2) -> nn.Module:
    """The model a study's config names, for samples of the given shape (without the batch axis).

    n_classes sizes a classifier's head; autoencoders, linear regression and the quadratic ignore it. A `python`
    model is whatever its factory returns for these two (batchlab.nets.factory).
    """
    if isinstance(spec, PythonModel):
        return build_factory_model(spec, in_shape, n_classes)
    if isinstance(spec, DenseAE):
        return DenseAutoencoder(in_shape, spec.hidden, spec.latent)
    if isinstance(spec, ConvAE):
        return ConvAutoencoder(in_shape, spec.channels, spec.latent)
    if isinstance(spec, MLPClassifier):
        return MLPNet(in_shape, spec.hidden, spec.latent, n_classes)
    if isinstance(spec, CNNClassifier):
        return CNNNet(in_shape, spec.channels, spec.latent, n_classes)
    if isinstance(spec, ContrastiveEncoder):
        return ContrastiveNet(in_shape, spec.channels, spec.latent, spec.projection)
    if isinstance(spec, LinearRegression):
        return LinearRegressionNet(in_shape)
    if isinstance(spec, DiagonalQuadratic):
        return DiagonalQuadraticNet(in_shape, spec.power)
    raise TypeError(f"unknown model spec {type(spec).__name__}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
