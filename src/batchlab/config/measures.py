"""What is measured of the runs: downstream SVMs, gradient noise, sharpness, steps to a target and the equal-steps control."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from batchlab.config.base import Strict, _no_repeats
from batchlab.config.training import Budget


class Downstream(Strict):
    """SVM on the latent embeddings in stratified k-fold cross-validation (the paper's protocol)."""

    folds: int = Field(10, ge=2, le=50, description="Cross-validation folds.")
    kernel: Literal["rbf", "linear"] = Field("rbf", description="SVM kernel.")
    C: PositiveFloat = Field(1.0, description="SVM regularisation.")
    baselines: list[Literal["raw", "pca"]] = Field(
        ["raw", "pca"], description="Reference embeddings: the raw inputs, and PCA with the latent's dimension."
    )


SPREAD_SUBSET_SHARE = 4  # a probe minibatch is at most this fraction of the subset: draws stay mostly distinct


class GradientNoise(Strict):
    """Gradient statistics measured at checkpoints of each run (McCandlish et al. 2018; Vaessen & van Leeuwen 2024)."""

    checkpoints: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        [0.0, 0.25, 1.0], min_length=1, description="Fractions of each run's steps at which to measure (0 = initialisation)."
    )
    seeds: PositiveInt = Field(1, description="Measure the runs of the first this many seeds (cost grows with it).")
    eval_samples: PositiveInt | None = Field(
        None, description="Fixed random subset of the training split the statistics use (default: min(256, training set))."
    )
    method: Literal["per_example", "two_batch"] = Field(
        "per_example",
        description="per_example: exact unbiased tr(Sigma), |G|^2 from torch.func per-example gradients; "
        "two_batch: McCandlish's estimator from minibatch gradient norms at two batch sizes (cheaper).",
    )
    two_batch_sizes: tuple[PositiveInt, PositiveInt] = Field((4, 64), description="B_small and B_big of two_batch.")
    two_batch_draws: PositiveInt = Field(64, description="Minibatch draws per batch size for two_batch.")
    spread_batch_sizes: list[PositiveInt] | None = Field(
        None,
        min_length=2,
        description="Probe batch sizes of the spread sweep, drawn without replacement from the evaluation subset, "
        "each at most a quarter of eval_samples (default: 1, 2, 4, ... up to min(128, eval_samples / 4)).",
    )
    spread_draws: int = Field(10, ge=2, description="Minibatches drawn per batch size for the spread (10 in Vaessen's code).")
    chunk_size: PositiveInt = Field(64, description="Examples per vmap chunk (bounds memory; no effect on results).")

    @field_validator("checkpoints")
    @classmethod
    def _sorted_unique(cls, fractions: list[float]) -> list[float]:
        return sorted(set(fractions))

    @model_validator(mode="after")
    def _increasing(self) -> "GradientNoise":
        small, big = self.two_batch_sizes
        if small >= big:
            raise ValueError(f"two_batch_sizes must be increasing, got {small}, {big}")
        return self

    def eval_size(self, n_train: int) -> int:
        """The subset's size: eval_samples (checked against the training set where it is known before the data are
        made), else 256; never more than the training split."""
        return min(self.eval_samples if self.eval_samples is not None else 256, n_train)

    def spread_sizes(self, n_train: int) -> list[int]:
        if self.spread_batch_sizes is not None:
            return sorted(set(self.spread_batch_sizes))
        top = min(128, max(1, self.eval_size(n_train) // SPREAD_SUBSET_SHARE))
        return [2**k for k in range(top.bit_length()) if 2**k <= top]


class Sharpness(Strict):
    """Where each run ended: sharpness of the minimum (Keskar et al. 2017), measured after training."""

    samples: int = Field(
        512, ge=0, description="Fixed training examples the Hessian of the loss is taken on (0: not measured)."
    )
    iters: PositiveInt = Field(20, description="Most Hessian-vector products of the Lanczos iteration.")
    tol: PositiveFloat = Field(
        1e-3, description="Converged when the residual bound of the largest Ritz value is below this (relative)."
    )


class StepsToTarget(Strict):
    """Target for steps-to-target and the critical-batch-size fit (McCandlish et al. 2018; Zhang et al. 2025)."""

    metric: Literal["val_loss", "train_loss"] = Field("val_loss", description="Logged curve the target applies to.")
    kind: Literal["fraction", "value", "within_best", "baseline_fraction"] = Field(
        "fraction",
        description="fraction: reach initial - value x (initial - best final of any run); value: reach this loss; "
        "within_best: reach best final x (1 + value); baseline_fraction: reach baseline - value x (baseline - best "
        "final), the baseline being the loss of the best constant prediction fitted on the training split "
        "(each feature's mean for an autoencoder, the class frequencies for a classifier).",
    )
    value: PositiveFloat = Field(0.5, description="The fraction (0-1], the loss value, or the relative margin.")
    interpolate: bool = Field(True, description="Place the crossing between logged points, linearly in log(step).")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples of seeds for the intervals.")

    @model_validator(mode="after")
    def _fraction_range(self) -> "StepsToTarget":
        if self.kind in ("fraction", "baseline_fraction") and self.value > 1:
            raise ValueError(f"a {self.kind} target must be in (0, 1], got {self.value}")
        return self

    def describe(self) -> str:
        """The target in words, for captions and pages."""
        return {
            "value": f"{self.metric} {self.value:g}",
            "fraction": f"{self.value:g} of the best run's improvement in {self.metric} from the initial loss",
            "within_best": f"{self.metric} within {self.value:.0%} of the best run's final value",
            "baseline_fraction": f"{self.value:g} of the best run's improvement in {self.metric} below the data's "
            "baseline (the best constant prediction)",
        }[self.kind]


TO_TARGET_KINDS = ("value", "baseline_ratio", "pilot_fraction")
RATE_CHECK_SPAN = 4.0  # a rate check's second rate lies at least this factor from the study's


class RateGrid(Strict):
    """The learning rate tuned at every batch size of a train-to-target analysis (McCandlish et al.; Shallue et al.).

    At each batch size a grid of `points` rates, `factor` apart, centred on the scaling rule's rate from one base rate,
    trains on the tuning seeds; the rate with the fewest steps to the target is kept and the analysis's own seeds train
    at it, so the rate is never chosen on the runs that report S(B). A best rate at the grid's edge extends the grid.
    """

    points: int = Field(3, ge=3, le=15, description="Rates in the grid at each batch size (at least 3).")
    factor: float = Field(2.0, gt=1.0, le=16.0, description="Ratio between neighbouring rates (more than 1).")
    base_lr: PositiveFloat | None = Field(
        None, description="The grid's centre at optim.base_batch_size (default: optim.lr); other batch sizes follow `rule`."
    )
    rule: Literal["auto", "linear", "sqrt"] = Field(
        "auto", description="How the centre scales with batch size: auto is sqrt for Adam, linear for SGD."
    )
    extensions: int = Field(
        2, ge=0, le=8, description="Further rates tried, one at a time, while the best lies at the grid's edge."
    )
    tuning_seeds: list[Annotated[int, Field(ge=0)]] = Field(
        [1000], min_length=1, description="Seeds the rates are chosen on: apart from to_target.seeds, which are measured."
    )

    @field_validator("tuning_seeds")
    @classmethod
    def _unique_tuning_seeds(cls, seeds: list[int]) -> list[int]:
        return _no_repeats(seeds, "to_target.lr_tuning.tuning_seeds")

    def scaling_rule(self, optimizer: str) -> str:
        """The rule the grid's centre follows: the configured one, or the optimizer's usual one."""
        if self.rule != "auto":
            return self.rule
        return "sqrt" if optimizer in ("adam", "adamw") else "linear"

    def multipliers(self) -> list[float]:
        """The grid's base-rate multipliers, centred on 1 (an even count leans one step up)."""
        lo = -((self.points - 1) // 2)
        return [self.factor ** (lo + i) for i in range(self.points)]


class WeightAveraging(Strict):
    """Steps to target read from an exponential moving average of the weights (Zhang et al. 2025).

    The average's half-life is a fixed share of the steps taken so far, so a short run at a large batch size is
    averaged over the same share of its training as a long one; a fixed decay would penalise the few-step runs.
    """

    half_life: float = Field(
        0.1, gt=0.0, le=0.5,
        description="Half-life of the average as a share of the steps so far (in (0, 0.5]): at step t the average "
        "keeps 2^(-1/(half_life t)) of itself and takes the rest from the current weights.",
    )


class ToTarget(Strict):
    """A train-to-target analysis of the critical batch size beside the fixed-budget sweep (McCandlish et al. 2018).

    Every batch size trains until its validation loss reaches a target known before training, or until the
    cap; the study's critical-batch estimates then come from these runs' steps to the target.
    """

    kind: Literal[TO_TARGET_KINDS] = Field(
        "pilot_fraction",
        description="value: reach this validation loss; baseline_ratio: reach value x the data's baseline (the loss "
        "of the best constant prediction); pilot_fraction: reach baseline - value x (baseline - pilot), the pilot being "
        "the mean final validation loss of the fixed-budget sweep's smallest batch size (value 1: the pilot's own loss).",
    )
    value: PositiveFloat = Field(0.5, description="The loss, the ratio to the baseline, or the share of the pilot's improvement.")
    cap: Budget = Field(description="Most training a run gets if it does not reach the target (epochs or samples).")
    batch_sizes: list[PositiveInt] | None = Field(None, min_length=1, description="Batch sizes (default: the study's).")
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=2, description="Seeds, at least 2 for the intervals (default: the study's first two)."
    )
    checks: int = Field(
        100, ge=4, le=1000, description="Log-spaced steps over the cap at which the target is checked and the curve logged."
    )
    gradient_seeds: PositiveInt = Field(
        2, description="Seeds whose gradient noise is measured where their runs stopped: at the target, when they reached it."
    )
    noise_samples: int = Field(
        1024, ge=16, le=65536,
        description="Training examples B_simple at the target is measured on (the whole training split if smaller): "
        "enough that the bias correction tr(Sigma)/n does not swamp |G|^2; its jackknife over them enters the "
        "noise-scale interval.",
    )
    lr_tuning: RateGrid | None = Field(
        None,
        description="Tune the learning rate at every batch size by steps to the target (McCandlish et al.'s B_crit "
        "assumes it); without it every batch size trains at the study's rate rule, and the noise-scale claim is "
        "inconclusive.",
    )
    weight_averaging: WeightAveraging | None = Field(
        None,
        description="Check the target, log the validation curve and keep the weights on an exponential moving "
        "average of the weights (Zhang et al. 2025); without it, on the weights as trained.",
    )
    rate_check: PositiveFloat | None = Field(
        None,
        description="Without lr_tuning: also train the measured seeds at this multiple of the study's rate (at least 4 "
        "or at most 1/4, and within 64x) and refit B_crit to them; a B_crit that moves by more than 2x follows the "
        "rate, not the gradient noise, and is flagged rate-limited.",
    )

    @field_validator("cap")
    @classmethod
    def _cap_in_samples(cls, cap: Budget) -> Budget:
        if cap.unit == "steps":
            raise ValueError("the cap must be in epochs or samples, the same data for every batch size")
        return cap

    @field_validator("batch_sizes")
    @classmethod
    def _sorted_unique(cls, sizes: list[int] | None) -> list[int] | None:
        return None if sizes is None else sorted(_no_repeats(sizes, "to_target.batch_sizes"))

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        return None if seeds is None else _no_repeats(seeds, "to_target.seeds")

    @model_validator(mode="after")
    def _share_in_range(self) -> "ToTarget":
        if self.kind == "pilot_fraction" and self.value > 1:
            raise ValueError(f"a pilot_fraction target must be in (0, 1], got {self.value}")
        if self.gradient_seeds > len(self.seeds or [0, 1]):
            raise ValueError(f"gradient_seeds ({self.gradient_seeds}) exceeds the number of seeds")
        if self.rate_check is not None:
            if self.lr_tuning is not None:
                raise ValueError("rate_check is for a fixed rate: with lr_tuning the rate is tuned per batch size")
            if not RATE_CHECK_SPAN <= max(self.rate_check, 1 / self.rate_check) <= 64:
                raise ValueError(f"rate_check must be at least {RATE_CHECK_SPAN:g} or at most 1/{RATE_CHECK_SPAN:g} "
                                 f"(and within 64x), got {self.rate_check:g}")
        shared = sorted(set(self.lr_tuning.tuning_seeds) & set(self.seeds or [])) if self.lr_tuning else []
        if shared:
            raise ValueError(f"lr_tuning.tuning_seeds {shared} are also to_target.seeds: a rate chosen on the runs "
                             "that report S(B) biases it low")
        return self

    def describe(self) -> str:
        """The target in words, for captions and pages."""
        return {
            "value": f"validation loss {self.value:g}",
            "baseline_ratio": f"{self.value:g} x the data's baseline (the best constant prediction)",
            "pilot_fraction": f"{self.value:g} of the pilot's improvement below the data's baseline (the pilot: "
            "the fixed-budget sweep's smallest batch size)",
        }[self.kind]


class EqualSteps(Strict):
    """The equal-steps control beside the fixed-data sweep (Hoffer et al. 2017): every batch size of the arm takes
    the same number of optimizer steps, so a batch-size effect that the number of updates explains disappears there."""

    steps: PositiveInt = Field(description="Optimizer steps of every run of the arm, whatever its batch size.")
    batch_sizes: list[PositiveInt] = Field(
        min_length=4,
        description="Batch sizes of the arm, each one of the study's (at least 4: the claim's test has batch sizes as "
        "its units). Choose them and `steps` so that their runs beat the data's baseline: the claim scores trained runs.",
    )
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=1, description="Seeds (default: the study's first two, or its only one)."
    )

    @field_validator("batch_sizes")
    @classmethod
    def _sorted_unique(cls, sizes: list[int]) -> list[int]:
        return sorted(_no_repeats(sizes, "equal_steps.batch_sizes"))

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        return None if seeds is None else _no_repeats(seeds, "equal_steps.seeds")
