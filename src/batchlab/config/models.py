"""The `model` block: autoencoders, classifiers, contrastive encoder, linear regression and quadratic a study trains."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, PositiveFloat, PositiveInt

from batchlab.config.base import Strict


class DenseAE(Strict):
    """Fully connected autoencoder (the EHR model): dense layers with ReLU down to the latent, mirrored decoder."""

    kind: Literal["dense_ae"]
    hidden: list[PositiveInt] = Field([256, 64], description="Encoder widths; the decoder mirrors them.")
    latent: PositiveInt = Field(32, description="Latent dimension.")
    output: Literal["sigmoid", "linear"] = Field("sigmoid", description="Output activation.")
    loss: Literal["bce", "mse"] = Field("bce", description="Reconstruction loss (bce needs data in [0, 1]).")


class ConvAE(Strict):
    """Convolutional autoencoder for 2-D images or 1-D signals (dimension taken from the data)."""

    kind: Literal["conv_ae"]
    channels: list[PositiveInt] = Field([16, 32], description="Channels of the stride-2 conv layers.")
    latent: PositiveInt = Field(32, description="Latent dimension.")
    output: Literal["sigmoid", "linear"] = Field("linear", description="Output activation.")
    loss: Literal["bce", "mse"] = Field("mse", description="Reconstruction loss.")


class MLPClassifier(Strict):
    """Fully connected classifier: ReLU layers, a `latent`-wide embedding layer, then a linear head."""

    kind: Literal["mlp"]
    hidden: list[PositiveInt] = Field([128], description="Widths of the hidden layers before the embedding layer.")
    latent: PositiveInt = Field(32, description="Width of the last hidden layer, the embedding scored downstream.")


class CNNClassifier(Strict):
    """Small convolutional classifier for 1-D signals or 2-D images: stride-2 convs, embedding layer, head."""

    kind: Literal["cnn"]
    channels: list[PositiveInt] = Field([16, 32], description="Channels of the stride-2 conv layers.")
    latent: PositiveInt = Field(64, description="Width of the embedding layer before the head.")


class ContrastiveEncoder(Strict):
    """Conv encoder trained with InfoNCE on two augmented views, negatives from the batch (SimCLR-style)."""

    kind: Literal["contrastive"]
    channels: list[PositiveInt] = Field([32, 64], description="Channels of the stride-2 conv layers.")
    latent: PositiveInt = Field(64, description="Width of the representation scored downstream.")
    projection: PositiveInt = Field(32, description="Width of the projection head the loss compares.")
    temperature: PositiveFloat = Field(0.2, description="Softmax temperature of InfoNCE.")
    shift: int = Field(4, ge=0, description="Augmentation: largest circular shift along the last axis, in samples.")
    scale: float = Field(0.2, ge=0.0, lt=1.0, description="Augmentation: amplitude scaled by 1 +- up to this.")
    noise: float = Field(0.05, ge=0.0, description="Augmentation: standard deviation of added Gaussian noise.")


class LinearRegression(Strict):
    """Linear regression without bias, from zero weights: the learner of the noisy quadratic model's regression form.

    Its per-sample loss is 0.5 (w.x - y)^2, whose SGD has an exact expected loss (batchlab.analysis.nqm), but whose
    multiplicative gradient noise makes single runs heavy-tailed; the additive form's learner is `quadratic`.
    """

    kind: Literal["linear"]
    init: Literal["zeros"] = Field("zeros", description="Initial weights: zeros (every seed starts from w = 0).")

    @property
    def latent(self) -> int:
        """The embedding scored downstream is the prediction itself: one wide."""
        return 1


class DiagonalQuadratic(Strict):
    """The noisy quadratic model's learner (data noisy_quadratic, form additive; Zhang et al. 2019): w in R^d from 0.

    Its per-sample loss is 0.5 sum_j h_j (w_j - z_j)^2 with h_j = j^-power (a sum over coordinates), so the
    minibatch gradient is H (w - w*) plus noise of covariance sigma^2 H / B, whatever w: SGD on it has an exact
    expected loss (batchlab.analysis.nqm).
    """

    kind: Literal["quadratic"]
    power: float = Field(
        1.5, gt=0.0, description="Curvature spectrum h_j = j^-power, j = 1..d; must equal the data's power."
    )

    @property
    def latent(self) -> int:
        """The embedding scored downstream is each sample's loss: one wide."""
        return 1


CLASSIFIER_KINDS = ("mlp", "cnn")


def widened(model, factor: float):
    """The model spec with its hidden widths (dense `hidden` or conv `channels`) times factor; latent kept.

    A model without hidden widths (linear, quadratic) is returned as it is at factor 1, and refused at any other.
    """
    if not hasattr(model, "hidden") and not hasattr(model, "channels"):
        if factor != 1:
            raise ValueError(f"model.kind {model.kind!r} has no hidden widths to scale by {factor:g}")
        return model
    field = "hidden" if hasattr(model, "hidden") else "channels"
    widths = [max(1, int(round(w * factor))) for w in getattr(model, field)]
    return model.model_copy(update={field: widths})


ModelSpec = Annotated[
    Union[DenseAE, ConvAE, MLPClassifier, CNNClassifier, ContrastiveEncoder, LinearRegression, DiagonalQuadratic],
    Field(discriminator="kind"),
]
