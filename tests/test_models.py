"""Models: shapes for every input kind, and no BatchNorm anywhere."""

import pytest
import torch
from torch import nn

from batchlab.config import ConvAE, DenseAE
from batchlab.models import build_model


@pytest.mark.parametrize(
    "spec, shape",
    [
        (DenseAE(kind="dense_ae", hidden=[16, 8], latent=4), (30,)),
        (DenseAE(kind="dense_ae", hidden=[16], latent=4), (1, 8, 8)),
        (ConvAE(kind="conv_ae", channels=[4, 8], latent=5), (1, 40)),
        (ConvAE(kind="conv_ae", channels=[4, 8], latent=5), (1, 30)),
        (ConvAE(kind="conv_ae", channels=[4, 8, 8], latent=5), (1, 32, 32)),
        (ConvAE(kind="conv_ae", channels=[4], latent=5), (1, 9, 7)),
    ],
    ids=["dense-vector", "dense-image", "conv1d-40", "conv1d-30-padded", "conv2d-32", "conv2d-odd"],
)
def test_reconstruction_and_latent_shapes(spec, shape):
    model = build_model(spec, shape)
    x = torch.randn(3, *shape)
    assert model(x).shape == x.shape
    assert model.encode(x).shape == (3, spec.latent)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_conv_needs_channel_axis():
    with pytest.raises(ValueError, match="conv_ae needs"):
        build_model(ConvAE(kind="conv_ae"), (64,))
