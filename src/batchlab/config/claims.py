"""The published claims a study tests and the data-size x model-size grid some of them need."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from batchlab.config.base import Strict


CLAIM_METRICS = (
    "train_loss", "val_loss", "test_loss",
    "svm_roc_auc_mean", "svm_accuracy_mean", "svm_r2_mean", "svm_mae_mean",
    "distance_from_init", "sharpness", "generalization_gap",
    "train_accuracy", "val_accuracy", "test_accuracy", "accuracy_gap",
    "gradient_spread", "gradient_noise_scale", "critical_batch_size",
)
CLAIM_EXPECTATIONS = (
    "increases_with_batch_size", "decreases_with_batch_size",
    "predicted_by_samples_seen", "holds_until_critical_batch",
    "flattens_with_batch_size", "predicts_critical_batch",
    "increases_with_data_size", "flat_with_model_size",
    "vanishes_at_equal_steps",
)
SCALING_EXPECTATIONS = ("increases_with_data_size", "flat_with_model_size")
CURVE_METRICS = ("train_loss", "val_loss")
GRADIENT_METRICS = ("gradient_spread", "gradient_noise_scale")
# metrics the training job itself writes (an equal-steps arm is trained, not measured), where lower or higher is better
RUN_METRICS = (
    "train_loss", "val_loss", "test_loss", "generalization_gap", "train_accuracy", "val_accuracy", "test_accuracy", "accuracy_gap",
)
# expectations that only one metric can carry, and that metric
ONLY_WITH = {
    "flattens_with_batch_size": "gradient_spread",
    "predicts_critical_batch": "gradient_noise_scale",
    **dict.fromkeys(SCALING_EXPECTATIONS, "critical_batch_size"),
}
DEFAULT_TOLERANCE = {
    "increases_with_batch_size": 0.5,
    "decreases_with_batch_size": 0.5,
    "holds_until_critical_batch": 0.05,
    "flat_with_model_size": 0.25,
    "flattens_with_batch_size": 0.25,
    "predicts_critical_batch": 3.0,
    "vanishes_at_equal_steps": 0.5,
    "predicted_by_samples_seen": 0.5,
}
TREND_EXPECTATIONS = ("increases_with_batch_size", "decreases_with_batch_size")
# what the equal-steps arm records per run: the training job's metrics and, measured on its weights, the spread
ARM_METRICS = (*RUN_METRICS, "gradient_spread")
ARM_EXPECTATIONS = (*TREND_EXPECTATIONS, "flattens_with_batch_size")
MINIMUM_EFFECT_LIMIT = {
    **dict.fromkeys(TREND_EXPECTATIONS, 1.0), "flattens_with_batch_size": 2.0, "vanishes_at_equal_steps": 1.0,
    "predicted_by_samples_seen": 0.5,
}


class Claim(Strict):
    """A published finding the study tests; the report gives it a verdict (see batchlab.analysis.claims)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Short slug naming the claim.")
    source: str = Field(description="Where the claim comes from (paper, section).")
    metric: Literal[CLAIM_METRICS] = Field(
        description="A column of the study's run table; gradient_spread (the spread of minibatch gradients of each "
        "measured run at its own batch size, at the last checkpoint); gradient_noise_scale (B_simple at the "
        "checkpoint closest to each run's crossing of the target); or critical_batch_size (across a scaling grid)."
    )
    expect: Literal[CLAIM_EXPECTATIONS] = Field(
        description="What is claimed: increases_/decreases_with_batch_size (trend over the sweep); "
        "predicted_by_samples_seen (a curve metric follows samples seen better than steps or batch size); "
        "holds_until_critical_batch (the metric at the fixed budget matches the smallest batch size's up to "
        "the fitted B_crit and is worse beyond); flattens_with_batch_size (gradient_spread falls more slowly "
        "than B^-1/2); predicts_critical_batch (gradient_noise_scale: B_simple / B_crit lies within a factor "
        "of 1); increases_with_data_size / flat_with_model_size (critical_batch_size across a scaling grid); "
        "vanishes_at_equal_steps (Hoffer et al.: the small-batch advantage of the fixed-data sweep is significant, and "
        "is gone in the study's equal_steps arm, where every batch size takes the same number of updates)."
    )
    tolerance: PositiveFloat | None = Field(
        None,
        description="increases_/decreases_with_batch_size: the smallest |Spearman rho| over the batch sizes that "
        "counts as an effect (default 0.5, at most 1); holds_until_critical_batch: largest relative change that counts as 'the same' (default 0.05); "
        "flat_with_model_size: largest |slope| of log B_crit on log width that counts as flat (default 0.25); "
        "flattens_with_batch_size: the smallest change of slope at the knee (slope after minus slope before, log-log) "
        "that counts as flattening (default 0.25, at most 2); "
        "vanishes_at_equal_steps: the smallest |Spearman rho| that counts as an advantage, in either arm (default 0.5, at most 1); "
        "predicted_by_samples_seen: δ, how far the exponent c of batch size in the curves' clock log(step × B^c) may lie "
        "from samples seen's c = 1 (default 0.5, at most 0.5, so that replicated means nearer samples than steps); "
        "predicts_critical_batch: the factor within which B_simple must match B_crit (default 3, above 1).",
    )
    arm: Literal["sweep", "equal_steps"] = Field(
        "sweep",
        description="The runs the claim is scored on: the fixed-data sweep (equal epochs: small batches take more "
        "updates), or the study's equal_steps arm (equal iterations: every batch size takes the same number of "
        "updates, as Vaessen & van Leeuwen compared their runs). The arm trains and measures the gradient spread, "
        "nothing else, so equal_steps takes gradient_spread or a metric the training runs record, with a trend or "
        "flattens_with_batch_size expectation.",
    )

    @model_validator(mode="after")
    def _metric_fits_expectation(self) -> "Claim":
        needed = ONLY_WITH.get(self.expect)
        if needed is not None and self.metric != needed:
            raise ValueError(f"claim {self.id!r}: expect {self.expect} goes with metric {needed}")
        if self.metric in ("critical_batch_size", "gradient_noise_scale") and self.expect not in ONLY_WITH:
            allowed = sorted(e for e, m in ONLY_WITH.items() if m == self.metric)
            raise ValueError(f"claim {self.id!r}: metric {self.metric} goes with expect {' or '.join(allowed)}")
        if self.expect == "predicted_by_samples_seen" and self.metric not in CURVE_METRICS:
            raise ValueError(f"claim {self.id!r}: predicted_by_samples_seen needs a logged curve metric {CURVE_METRICS}")
        if self.expect == "vanishes_at_equal_steps" and self.metric not in RUN_METRICS:
            raise ValueError(
                f"claim {self.id!r}: vanishes_at_equal_steps needs a metric the training runs record {RUN_METRICS}; "
                f"{self.metric} is not measured on the equal-steps arm"
            )
        if self.arm == "equal_steps" and (self.metric not in ARM_METRICS or self.expect not in ARM_EXPECTATIONS):
            raise ValueError(
                f"claim {self.id!r}: arm equal_steps scores {' or '.join(ARM_EXPECTATIONS)} on a metric the arm records "
                f"{ARM_METRICS}, not {self.expect} on {self.metric}"
            )
        if self.expect == "holds_until_critical_batch" and self.metric in GRADIENT_METRICS:
            raise ValueError(f"claim {self.id!r}: holds_until_critical_batch needs a run-table metric")
        if self.tolerance is not None and self.expect not in DEFAULT_TOLERANCE:
            raise ValueError(f"claim {self.id!r}: tolerance applies to {', '.join(DEFAULT_TOLERANCE)} only")
        if self.expect == "predicts_critical_batch" and self.tolerance is not None and self.tolerance <= 1:
            raise ValueError(f"claim {self.id!r}: the factor of predicts_critical_batch must exceed 1, got {self.tolerance}")
        limit = MINIMUM_EFFECT_LIMIT.get(self.expect)
        if limit is not None and self.tolerance is not None and self.tolerance > limit:
            raise ValueError(f"claim {self.id!r}: the minimum effect of {self.expect} lies in (0, {limit:g}], got {self.tolerance}")
        return self

    def tolerance_or_default(self) -> float:
        return self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE.get(self.expect, 0.0)


class Verdicts(Strict):
    """How the scorecard's tests decide: their level, and the permutations of a trend test."""

    alpha: float = Field(
        0.05, gt=0.0, lt=0.5,
        description="Significance level of every claim's test; the study's p-values are adjusted by "
        "Benjamini-Hochberg over its claims before they are compared with it.",
    )
    permutations: int = Field(
        20000, ge=1000, le=1_000_000,
        description="Random orderings of the batch sizes in a trend claim's permutation test (every ordering is "
        "enumerated up to 8 batch sizes).",
    )


class Scaling(Strict):
    """A data-size x model-size grid (Zhang et al. 2025): the study is run once per (train_samples, width)."""

    train_samples: list[PositiveInt] = Field(
        min_length=1, description="Training-set sizes (nested seeded subsets of the training split)."
    )
    width_factors: list[PositiveFloat] = Field(
        [1.0], min_length=1, description="Multipliers of the model's hidden widths (hidden or channels); latent kept."
    )

    @model_validator(mode="after")
    def _grid(self) -> "Scaling":
        if len(set(self.train_samples)) != len(self.train_samples):
            raise ValueError(f"train_samples repeat: {self.train_samples}")
        if len(set(self.width_factors)) != len(self.width_factors):
            raise ValueError(f"width_factors repeat: {self.width_factors}")
        if len(self.train_samples) * len(self.width_factors) < 2:
            raise ValueError("a scaling grid needs at least two cells (two train_samples or two width_factors)")
        self.train_samples.sort()
        self.width_factors.sort()
        return self

    def cells(self) -> list[tuple[int, float]]:
        """(train_samples, width_factor) of every cell, in the grid's order (sizes outer, widths inner)."""
        return [(n, w) for n in self.train_samples for w in self.width_factors]
