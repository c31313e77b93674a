"""Models: shapes for every input kind, and no BatchNorm anywhere."""

import pytest
import torch
from torch import nn

from batchlab.config import CNNClassifier, ConvAE, DenseAE, MLPClassifier
from batchlab.nets.models import build_model
from batchlab.nets.objectives import sample_loss_for


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


@pytest.mark.parametrize(
    "spec, shape",
    [
        (MLPClassifier(kind="mlp", hidden=[16, 8], latent=4), (64,)),
        (CNNClassifier(kind="cnn", channels=[4, 8], latent=6), (1, 40)),
        (CNNClassifier(kind="cnn", channels=[4, 8], latent=6), (1, 9, 9)),
    ],
)
def test_classifier_logits_and_embedding_shapes(spec, shape):
    model = build_model(spec, shape, n_classes=7)
    x = torch.randn(5, *shape)
    assert model(x).shape == (5, 7)
    assert model.encode(x).shape == (5, spec.latent)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_classifier_loss_is_per_sample_cross_entropy():
    spec = MLPClassifier(kind="mlp", hidden=[8], latent=4)
    model = build_model(spec, (5,), n_classes=3)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    losses = sample_loss_for(spec)(model, x, y)
    expected = -torch.log_softmax(model(x), 1)[torch.arange(6), y]
    assert losses.shape == (6,) and torch.allclose(losses, expected)
