"""The `model` block: autoencoders, classifiers, contrastive encoder, linear regression and quadratic a study trains,
or a model of the user's own named by a Python factory."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import Field, PositiveFloat, PositiveInt, ValidationInfo, model_validator

from batchlab.config.base import Strict, _inspector


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


FACTORY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


def import_factory(path: str) -> Callable:
    """The callable `module.path:name` names, imported from the working directory or an installed package.

    The working directory is on sys.path for this import only. Importing runs the module's code, as a Snakefile
    runs its own: naming a factory in a config is the one place a config runs code.
    """
    module_name, _, attr = path.partition(":")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # any error of the user's module: say which and why, in one line
        raise ValueError(f"factory {path!r} does not import: {type(err).__name__}: {err}") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"factory {path!r}: module {module_name!r} has no callable {attr!r}")
    return factory


def factory_source_sha256(path: str) -> str:
    """SHA-256 of the source file of the module that defines the factory (imports it)."""
    factory = import_factory(path)
    module = sys.modules[factory.__module__] if factory.__module__ in sys.modules else None
    source = inspect.getsourcefile(module or factory)
    if source is None:
        raise ValueError(f"factory {path!r}: its module has no source file to track (a compiled module?)")
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()


class PythonModel(Strict):
    """A model of your own: a Python callable `factory(in_shape, n_classes, **args)` returning a torch.nn.Module.

    in_shape is one sample's shape (no batch axis), n_classes the classes of the data's label (1 for a regression
    label or none). The loss is the task's: cross-entropy on the module's logits for a classifier, reconstruction of
    the input for an autoencoder. Naming a factory runs its module's code when the config is loaded.
    """

    kind: Literal["python"]
    factory: str = Field(
        pattern=FACTORY_PATTERN,
        description="module:callable, imported from the working directory or an installed package; "
        "called as factory(in_shape, n_classes, **args) and returning a torch.nn.Module.",
    )
    args: dict[str, Any] = Field({}, description="Keyword arguments of the factory (plain YAML values).")
    task: Literal["autoencoder", "classifier"] = Field(
        description="The loss: autoencoder (the output reconstructs the input, shaped like it) or classifier "
        "(the output is [B, n_classes] logits, trained with cross-entropy against the data's label)."
    )
    loss: Literal["mse", "bce"] | None = Field(
        None,
        description="Autoencoders only: mse (default; the output compared with the input as it is) or bce "
        "(the output is logits; data in [0, 1]).",
    )
    latent: PositiveInt | None = Field(
        None,
        description="Width of the model's encode(x) output, the embedding scored downstream; measured when the "
        "config is validated. A model without encode has its downstream step skipped, and this sets the PCA "
        "baseline's width (default 32).",
    )
    source_sha256: str | None = Field(
        None,
        description="Set when the config is loaded (leave it out): the SHA-256 of the factory's module file, so "
        "that editing that file reruns the study's cells.",
    )

    @model_validator(mode="after")
    def _loss_for_task(self) -> "PythonModel":
        if self.task == "classifier" and self.loss is not None:
            raise ValueError("model.loss applies to task autoencoder; a classifier trains with cross-entropy")
        return self

    @model_validator(mode="after")
    def _track_source(self, info: ValidationInfo) -> "PythonModel":
        """With file checks (the workflow's and `batchlab validate`'s), import the factory and hash its module."""
        if _inspector(info) is not None:
            self.source_sha256 = factory_source_sha256(self.factory)
        return self

    @property
    def output(self) -> str:
        """How the reconstruction loss reads the output: logits under bce, the values themselves under mse."""
        return "sigmoid" if self.loss == "bce" else "linear"


CLASSIFIER_KINDS = ("mlp", "cnn")


def is_classifier(model) -> bool:
    """Whether the model spec trains with cross-entropy against the data's label (a built-in classifier or a
    factory model with task classifier)."""
    return model.kind in CLASSIFIER_KINDS or getattr(model, "task", None) == "classifier"


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
    Union[
        DenseAE, ConvAE, MLPClassifier, CNNClassifier, ContrastiveEncoder, LinearRegression, DiagonalQuadratic,
        PythonModel,
    ],
    Field(discriminator="kind"),
]
