"""A study (data, model, training and the sweep, checked together) and the whole config file.

The YAML in config/ is validated against these models when the Snakefile is parsed,
so a typo or an impossible value stops the run before any job starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt, ValidationInfo, field_validator, model_validator

from batchlab import finished_run
from batchlab.config.advise import Advise
from batchlab.config.base import Strict, _existing, _no_repeats
from batchlab.config.claims import GRADIENT_METRICS, SCALING_EXPECTATIONS, Claim, Scaling, Verdicts
from batchlab.config.data import DataSpec, EHRCodesData, FileData
from batchlab.config.measures import (
    SPREAD_SUBSET_SHARE, Downstream, EqualSteps, GradientNoise, Sharpness, StepsToTarget, ToTarget,
)
from batchlab.config.models import ModelSpec, is_classifier, widened
from batchlab.config.training import Budget, Optim, Training

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def variant_name(study_name: str, train_samples: int, width: float) -> str:
    """The name of one cell of a scaling grid, e.g. mnist1d_scaling-n2000-w0p5."""
    return f"{study_name}-n{train_samples}-w{format(width, 'g').replace('.', 'p')}"


def _or_powers_of_two(schema: dict) -> None:
    """The batch sizes' JSON schema: a list, or the word the validator expands."""
    listed = {k: v for k, v in schema.items() if k not in ("title", "description")}
    for key in listed:
        del schema[key]
    schema["anyOf"] = [listed, {"const": "powers_of_two", "type": "string"}]


class Study(Strict):
    """One batch-size study: a data set, a model, a training protocol and the sweep."""

    description: str = Field("", description="One line shown at the top of the study's report.")
    data: DataSpec
    model: ModelSpec
    optim: Optim = Field(default_factory=Optim)
    budget: Budget
    training: Training = Field(default_factory=Training, description="Training engine, micro-batching and precision.")
    batch_sizes: list[PositiveInt] = Field(
        min_length=1,
        description="Batch sizes of the sweep, or powers_of_two: 1, 2, 4, ... up to the training split.",
        json_schema_extra=_or_powers_of_two,
    )
    seeds: list[Annotated[int, Field(ge=0)]] = Field([0, 1, 2], min_length=1, description="Training seeds.")
    curve_points: int = Field(40, ge=2, le=1000, description="Log-spaced points of each logged loss curve.")
    eval_batch_size: PositiveInt = Field(1024, description="Batch size for evaluation passes (no effect on results).")
    downstream: Downstream = Field(default_factory=Downstream)
    gradients: GradientNoise = Field(default_factory=GradientNoise)
    steps_to_target: StepsToTarget = Field(default_factory=StepsToTarget)
    sharpness: Sharpness = Field(default_factory=Sharpness)
    claims: list[Claim] = Field([], description="Published claims to test; the report's scorecard gives each a verdict.")
    verdicts: Verdicts = Field(default_factory=Verdicts, description="How the scorecard's tests decide.")
    scaling: Scaling | None = Field(
        None, description="Run the study over a grid of training-set sizes and model widths (Zhang et al. 2025)."
    )
    to_target: ToTarget | None = Field(
        None,
        description="Also train every batch size to a target known before training; the critical batch size is then "
        "measured from those runs (config/README.md: to_target).",
    )
    equal_steps: EqualSteps | None = Field(
        None,
        description="Also train some batch sizes for the same number of optimizer steps each: the control arm of a "
        "vanishes_at_equal_steps claim (config/README.md: equal_steps).",
    )
    advise: Advise | None = Field(
        None,
        description="A pilot that picks a batch size and rate by successive halving within a cap in minutes, toward "
        "to_target's target (config/README.md: advise).",
    )

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _powers_of_two(cls, sizes: object, info: ValidationInfo) -> object:
        if sizes != "powers_of_two":
            return sizes
        data = info.data.get("data")
        if data is None:  # the data block is invalid and already reported; this field adds nothing
            return [1]
        if not data.facts_known():
            raise ValueError("powers_of_two needs the training set's size: validate the config with file checks")
        return [2**k for k in range(data.n_train().bit_length())]

    @field_validator("batch_sizes")
    @classmethod
    def _fit_training_set(cls, sizes: list[int], info: ValidationInfo) -> list[int]:
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"batch sizes repeat: {sizes}")
        data = info.data.get("data")
        if data is not None and data.facts_known():
            n_train = data.n_train()
            too_big = [b for b in sizes if b > n_train]
            if too_big:
                raise ValueError(f"batch size {too_big[0]} is larger than the training set ({n_train} samples)")
        return sorted(sizes)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        return _no_repeats(seeds, "seeds")

    def variants(self, name: str) -> dict[str, "Study"]:
        """The studies a scaling grid runs, by name (the study itself when it has no grid).

        Each cell trains on `train_samples` of the training split with widths times the factor; it keeps the
        per-batch-size claims, while the grid's own claims are tested across cells (batchlab.analysis.scaling).
        """
        if self.scaling is None:
            return {name: self}
        return {
            variant_name(name, n, w): self.model_copy(
                update={
                    "description": f"{self.description} [scaling cell: {n} training samples, width x{w:g}]".strip(),
                    "data": self.data.model_copy(update={"train_samples": n}),
                    "model": widened(self.model, w),
                    "claims": [c for c in self.claims if c.expect not in SCALING_EXPECTATIONS],
                    "scaling": None,
                }
            )
            for n, w in self.scaling.cells()
        }

    def cell_view(self, batch_size: int) -> "Study":
        """The study as one training cell sees it: only what changes its runs.

        Jobs receive this view (not the whole study) so that adding a batch size or editing the
        description, downstream settings or operational settings (`training.cuda_graphs`) reruns no
        training job; the train rule passes those apart, as parameters Snakemake does not track.
        """
        return self.model_copy(
            update={
                "batch_sizes": [batch_size],
                "description": "",
                "downstream": Downstream(),
                "gradients": GradientNoise(checkpoints=self.gradients.checkpoints, seeds=self.gradients.seeds),
                "steps_to_target": StepsToTarget(),
                "claims": [],
                "verdicts": Verdicts(),
                "scaling": None,
                "to_target": None,
                "equal_steps": None,
                "advise": None,
                "training": self.training.model_copy(update={"cuda_graphs": "auto"}),
            }
        )

    def to_target_view(self) -> "Study":
        """The study the train-to-target runs are: the cap as the budget, its batch sizes and seeds, the target
        checked at `checks` log-spaced steps, weights kept where a run stops; no sharpness, SVMs or claims."""
        t = self.to_target
        if t is None:
            raise ValueError("the study has no to_target block")
        seeds = t.seeds or self.seeds[:2]
        g = self.gradients
        optim = self.optim
        if t.lr_tuning is not None:  # the grid's centre: its base rate, scaled with batch size by its rule
            optim = optim.model_copy(update={"lr_rule": t.lr_tuning.scaling_rule(optim.name),
                                             "lr": t.lr_tuning.base_lr or optim.lr, "lr_grid": []})
        return self.model_copy(
            update={
                "optim": optim,
                "budget": t.cap,
                "batch_sizes": t.batch_sizes or self.batch_sizes,
                "seeds": seeds,
                "curve_points": t.checks,
                "gradients": g.model_copy(update={"checkpoints": [1.0], "seeds": t.gradient_seeds,
                                                  "eval_samples": self._at_most_train(t.noise_samples),
                                                  "spread_batch_sizes": None}),  # no spread: only B_simple
                "sharpness": Sharpness(samples=0),
                "steps_to_target": StepsToTarget(metric="val_loss", kind="value", value=1.0,
                                                 interpolate=self.steps_to_target.interpolate,
                                                 bootstrap=self.steps_to_target.bootstrap),
                "claims": [],
                "scaling": None,
                "to_target": None,
                "equal_steps": None,
            }
        )

    def _at_most_train(self, n: int) -> int:
        """n, or the training split's size where it is known and smaller (the rest is clamped when measured)."""
        return min(n, self.data.n_train()) if self.data.facts_known() else n

    def equal_steps_view(self) -> "Study":
        """The study the equal-steps arm is: `steps` updates at each of its batch sizes, with its seeds; trained and
        evaluated like the sweep, weights kept at the end (for the spread), but no sharpness, SVMs or claims of its own."""
        e = self.equal_steps
        if e is None:
            raise ValueError("the study has no equal_steps block")
        seeds = e.seeds or self.seeds[:2]
        return self.model_copy(
            update={
                "budget": Budget(unit="steps", amount=e.steps),
                "batch_sizes": e.batch_sizes,
                "seeds": seeds,
                "sharpness": Sharpness(samples=0),
                # every seed's weights kept at the end, where the spread is measured at equal iterations
                "gradients": self.gradients.model_copy(update={"checkpoints": [1.0], "seeds": len(seeds)}),
                "claims": [],
                "scaling": None,
                "to_target": None,
                "equal_steps": None,
            }
        )

    def measures_arm_spread(self) -> bool:
        """Whether a claim scores the gradient spread on the equal-steps arm, which then gets its own gradient job."""
        return any(c.arm == "equal_steps" and c.metric == "gradient_spread" for c in self.claims)

    @property
    def is_classifier(self) -> bool:
        return is_classifier(self.model)

    # Cross-field checks, one validator per concern. Pydantic stops at the first that fails, so their order is
    # the order in which problems are reported. Those that need what a user's files hold are skipped when the
    # files were not read (a job's copy from JSON, validated before the workflow started).

    @model_validator(mode="after")
    def _loss_fits_data(self) -> "Study":
        """The loss and the kind of model suit the data's target."""
        if getattr(self.model, "loss", None) == "bce" and self.model.output != "sigmoid":
            raise ValueError("model.loss 'bce' needs model.output 'sigmoid'")
        if self.is_classifier and self.data.target_task() == "regression":
            raise ValueError(f"model.kind {self.model.kind!r} is a classifier, but the data's label is a regression target")
        if self.data.target_task() == "none" and (self.is_classifier or self.model.kind == "linear"):
            raise ValueError(f"model.kind {self.model.kind!r} learns a label, but the data set has none (data.label)")
        if self.model.kind == "linear" and self.data.target_task() != "regression":
            raise ValueError("model.kind 'linear' is a regression model, but the data's label is a classification target")
        if self.steps_to_target.kind == "baseline_fraction" and self.model.kind == "contrastive":
            raise ValueError(
                "steps_to_target.kind 'baseline_fraction' needs a baseline the data define (a constant prediction), "
                "which a contrastive loss has not; use fraction, within_best or value"
            )
        return self

    @model_validator(mode="after")
    def _noisy_quadratic_learner(self) -> "Study":
        """The noisy quadratic model's two forms each have their learner: quadratic (additive), linear (regression)."""
        additive = self.data.name == "noisy_quadratic" and self.data.form == "additive"
        if self.model.kind == "quadratic":
            if not additive:
                got = f"form {self.data.form!r}" if self.data.name == "noisy_quadratic" else f"name {self.data.name!r}"
                raise ValueError(
                    f"model.kind 'quadratic' learns data.name 'noisy_quadratic' with data.form 'additive' only (its loss "
                    f"0.5 sum_j h_j (w_j - z_j)^2 is that model's), got data.{got}"
                )
            if self.model.power != self.data.power:
                raise ValueError(
                    f"model.power ({self.model.power:g}) must equal data.power ({self.data.power:g}): the quadratic's "
                    "curvature is the data's spectrum"
                )
        if self.model.kind == "linear" and additive:
            raise ValueError(
                "model.kind 'linear' needs data.form 'regression' (the additive form's label is all zeros); "
                "the additive form's learner is model.kind 'quadratic'"
            )
        return self

    @model_validator(mode="after")
    def _gradients_fit_data(self) -> "Study":
        """The gradient statistics' subset and probe batches fit in the training set."""
        if not self.data.facts_known():
            return self
        n_train = self.data.n_train()
        if (self.gradients.eval_samples or 0) > n_train:
            raise ValueError(f"gradients.eval_samples ({self.gradients.eval_samples}) exceeds the training set ({n_train})")
        n_eval = self.gradients.eval_size(n_train)
        too_big = [b for b in self.gradients.spread_sizes(n_train) if b * SPREAD_SUBSET_SHARE > n_eval]
        if too_big:
            raise ValueError(
                f"gradients.spread_batch_sizes {too_big} exceed a quarter of gradients.eval_samples ({n_eval}): "
                "minibatches drawn without replacement from the subset would overlap so much that their spread "
                "shrinks by construction (to 0 at the subset's size); lower them or raise eval_samples"
            )
        return self

    @model_validator(mode="after")
    def _folds_fit_classes(self) -> "Study":
        """Every downstream fold can hold a sample of the rarest class."""
        if not self.data.facts_known():
            return self
        smallest, folds = self.data.smallest_class(), self.downstream.folds
        if smallest is not None and smallest < folds:
            raise ValueError(
                f"data: {self.data.origin()}: the rarest class of {self.data.label!r} has {smallest} samples, "
                f"fewer than downstream.folds ({folds}); lower the folds or add samples"
            )
        if isinstance(self.data, (FileData, EHRCodesData)) and self.data.n_samples_total() < folds:
            raise ValueError(f"data: {self.data.origin()}: fewer samples than downstream.folds ({folds})")
        return self

    @model_validator(mode="after")
    def _claims_are_consistent(self) -> "Study":
        """Claim ids are unique, and claims about a scaling grid have one."""
        ids = [c.id for c in self.claims]
        if len(set(ids)) != len(ids):
            raise ValueError(f"claims: ids repeat: {ids}")
        scaling_claims = [c.id for c in self.claims if c.expect in SCALING_EXPECTATIONS]
        if scaling_claims and self.scaling is None:
            raise ValueError(f"claims {scaling_claims} are about a scaling grid, but the study has no `scaling` block")
        return self

    @model_validator(mode="after")
    def _scaling_grid_fits(self) -> "Study":
        """The grid's training-set sizes fit the split and the batch sizes, and it spans what its claims compare."""
        if self.scaling is None:
            return self
        if not hasattr(self.model, "hidden") and not hasattr(self.model, "channels") and self.scaling.width_factors != [1]:
            raise ValueError(f"model.kind {self.model.kind!r} has no hidden widths to scale: scaling.width_factors must be [1]")
        if self.data.facts_known():
            too_big = [n for n in self.scaling.train_samples if n > self.data.n_train_full()]
            if too_big:
                raise ValueError(
                    f"scaling.train_samples {too_big} exceed the training split ({self.data.n_train_full()} samples)"
                )
        small = min(self.scaling.train_samples)
        if max(self.batch_sizes) > small:
            raise ValueError(f"batch size {max(self.batch_sizes)} is larger than scaling.train_samples {small}")
        wanted = {c.expect for c in self.claims}
        if "increases_with_data_size" in wanted and len(self.scaling.train_samples) < 2:
            raise ValueError("a claim about data size needs at least two scaling.train_samples")
        if "flat_with_model_size" in wanted and len(self.scaling.width_factors) < 2:
            raise ValueError("a claim about model size needs at least two scaling.width_factors")
        return self

    @model_validator(mode="after")
    def _to_target_fits(self) -> "Study":
        """The train-to-target block's target, seeds and batch sizes fit the study."""
        if self.to_target is None:
            return self
        t = self.to_target
        default = StepsToTarget()  # compared with the defaults, not model_fields_set: JSON round trips set every field
        unused = [k for k in ("kind", "metric", "value") if getattr(self.steps_to_target, k) != getattr(default, k)]
        if unused:
            raise ValueError(
                f"steps_to_target.{', steps_to_target.'.join(unused)} would not be used: with to_target the critical "
                "batch size is measured at to_target's target; remove them (interpolate and bootstrap still apply)"
            )
        if t.kind != "value" and self.model.kind == "contrastive":
            raise ValueError(
                f"to_target.kind {t.kind!r} needs the data's baseline (a constant prediction), which a contrastive "
                "loss has not; use kind: value"
            )
        if t.seeds is None and len(self.seeds) < 2:
            raise ValueError("to_target needs at least 2 seeds: set to_target.seeds or add study seeds")
        if t.lr_tuning is not None:
            shared = sorted(set(t.lr_tuning.tuning_seeds) & set(t.seeds or self.seeds[:2]))
            if shared:
                raise ValueError(f"to_target.lr_tuning.tuning_seeds {shared} are also the seeds the analysis measures: "
                                 "a rate chosen on the runs that report S(B) biases it low; pick other tuning seeds")
        if t.rate_check is not None and self.optim.lr_rule == "tuned":
            raise ValueError("to_target.rate_check checks a fixed rate rule; optim.lr_rule 'tuned' trains a grid")
        if t.cap.unit == "epochs" and t.cap.amount < 1:
            raise ValueError(f"to_target.cap ({t.cap.amount:g} epochs) is less than one epoch at the largest batch size")
        if self.scaling is None and not self.data.facts_known():
            return self
        limit = self.data.n_train() if self.scaling is None else min(self.scaling.train_samples)
        too_big = [b for b in (t.batch_sizes or []) if b > limit]
        if too_big:
            raise ValueError(f"to_target.batch_sizes {too_big} exceed the training set ({limit} samples)")
        if t.cap.unit == "samples" and t.cap.amount < limit:
            raise ValueError(f"to_target.cap ({t.cap.amount:g} samples) is less than one epoch of the training set "
                             f"({limit} samples) at the largest batch size")
        return self

    @model_validator(mode="after")
    def _equal_steps_fits(self) -> "Study":
        """The equal-steps arm's batch sizes are the sweep's, and a claim about it has the arm."""
        claims = [c.id for c in self.claims if c.expect == "vanishes_at_equal_steps"]
        if claims and self.equal_steps is None:
            raise ValueError(f"claims {claims} compare the sweep with an equal-steps arm, but the study has no `equal_steps` block")
        on_arm = [c.id for c in self.claims if c.arm == "equal_steps"]
        if on_arm and self.equal_steps is None:
            raise ValueError(f"claims {on_arm} are scored on the equal-steps arm (arm: equal_steps), but the study has no "
                             "`equal_steps` block")
        if self.equal_steps is None:
            return self
        knee = [c.id for c in self.claims if c.arm == "equal_steps" and c.expect == "flattens_with_batch_size"]
        arm_seeds = self.equal_steps.seeds or self.seeds[:2]
        if knee and len(arm_seeds) == 1 and len(self.equal_steps.batch_sizes) < 5:
            raise ValueError(
                f"claims {knee} fit a broken stick (4 coefficients) to the arm's batch sizes: with one seed the noise is "
                f"estimated from its residuals, which needs at least 5 equal_steps.batch_sizes, got "
                f"{len(self.equal_steps.batch_sizes)}; add batch sizes or seeds"
            )
        if self.scaling is not None:
            raise ValueError("equal_steps is not run across a scaling grid: give it to a study without `scaling`")
        outside = [b for b in self.equal_steps.batch_sizes if b not in self.batch_sizes]
        if outside:
            raise ValueError(
                f"equal_steps.batch_sizes {outside} are not among the study's batch_sizes {self.batch_sizes}: the claim "
                "compares the two arms at the same batch sizes"
            )
        return self

    @model_validator(mode="after")
    def _advise_fits(self) -> "Study":
        """The pilot has its target (to_target) and at least 3 batch sizes that fit the training split."""
        if self.advise is not None:
            self.advise.check(self)
        return self

    @model_validator(mode="after")
    def _gradient_seeds_suffice(self) -> "Study":
        """Enough seeds' gradients are measured, at trained checkpoints, for the claims that resample them."""
        if self.gradients.seeds > len(self.seeds):
            raise ValueError(f"gradients.seeds ({self.gradients.seeds}) exceeds the number of seeds ({len(self.seeds)})")
        gradient_claims = [c.id for c in self.claims if c.metric in GRADIENT_METRICS and c.arm == "sweep"]
        if gradient_claims and self.gradients.seeds < 2:
            raise ValueError(
                f"claims {gradient_claims} resample the seeds whose gradients were measured: set gradients.seeds to at least 2"
            )
        if gradient_claims and max(self.gradients.checkpoints) == 0:
            raise ValueError(f"claims {gradient_claims} need a gradients.checkpoints fraction above 0 (a trained model)")
        if gradient_claims and self.to_target is not None and self.to_target.gradient_seeds < 2:
            raise ValueError(f"claims {gradient_claims} resample the seeds measured at the target: set to_target.gradient_seeds to at least 2")
        return self

    @model_validator(mode="after")
    def _contrastive_limits(self) -> "Study":
        """What an in-batch (contrastive) loss cannot give: a gradient noise scale, or a captured step."""
        noise_claims = [c.id for c in self.claims if c.metric == "gradient_noise_scale"]
        if noise_claims and self.model.kind == "contrastive":
            raise ValueError(f"claims {noise_claims}: the gradient noise scale is not defined for an in-batch (contrastive) loss")
        if self.model.kind == "contrastive" and self.training.cuda_graphs == "require":
            raise ValueError(
                "training.cuda_graphs: require cannot be met by a contrastive model, whose views are drawn on the host "
                "at every step (a graph would replay one step's views); use auto or off"
            )
        return self


class Config(Strict):
    """The whole configuration file."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: a GPU when one is present.")
    checkpoint_every_s: PositiveFloat = Field(
        300.0,
        description="Seconds between saves of a training run's state, from which a killed job resumes (no effect on results).",
    )
    warm_start: bool = Field(
        True,
        description="Start each job of a local run in a process forked from a server that has already loaded its "
        "libraries (Linux; no effect on results). false: every job starts its own interpreter.",
    )
    warn_above_hours: PositiveFloat = Field(
        2.0,
        description="Warn (batchlab validate, and every run as it starts) when the config's estimated time on this "
        "machine exceeds this many hours, naming the costliest cells (no effect on results).",
    )
    compare_with: Path | None = Field(
        None,
        description="The working folder (results/ and reports/) of a finished run of this config elsewhere, for "
        "example on another device; relative paths from the folder the pipeline runs in. The report then lists every "
        "claim whose verdict differs between the two runs and each metric's differences (no effect on results).",
    )
    studies: dict[str, Study] = Field(min_length=1, description="Studies by name (letters, digits, _ and -).")

    @field_validator("compare_with")
    @classmethod
    def _finished_run(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        if _existing(path, "folder").resolve() == Path.cwd().resolve():
            raise ValueError(f"{path}: is this run's own folder; name another run's")
        if not finished_run.table_files(path):
            raise ValueError(f"{path}: not a finished run's working folder (it has no {finished_run.RUN_TABLES})")
        return path

    @field_validator("studies")
    @classmethod
    def _names_are_paths(cls, studies: dict[str, Study]) -> dict[str, Study]:
        for name in studies:
            if not STUDY_NAME.match(name):
                raise ValueError(f"study name {name!r} must use only letters, digits, '_' and '-'")
        seen: set[str] = set(studies)
        for name, study in studies.items():
            if study.scaling is None:
                continue
            clash = seen & set(study.variants(name))
            if clash:
                raise ValueError(f"study names {sorted(clash)} clash with the scaling cells of {name!r}")
            seen |= set(study.variants(name))
        return studies

    def runnable_studies(self) -> dict[str, Study]:
        """Every study the pipeline trains: plain studies as written, scaling grids expanded into their cells."""
        return {k: v for name, study in self.studies.items() for k, v in study.variants(name).items()}

    def scaling_studies(self) -> dict[str, Study]:
        """The studies with a scaling grid, whose cells are analysed together."""
        return {name: study for name, study in self.studies.items() if study.scaling is not None}
