"""How every run trains: the optimizer and its learning-rate rule, the budget, and the engine."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from batchlab.config.base import Strict


class Optim(Strict):
    """Optimizer and learning-rate rule."""

    name: Literal["adam", "sgd"] = Field("adam", description="Adam, or SGD with momentum.")
    lr: PositiveFloat = Field(1e-3, description="Learning rate (at base_batch_size when a scaling rule is used).")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum (ignored by Adam).")
    weight_decay: float = Field(0.0, ge=0.0, description="L2 weight decay.")
    lr_rule: Literal["fixed", "linear", "sqrt", "tuned"] = Field(
        "fixed",
        description="fixed: the same lr at every batch size (the autoencoder paper's 'none'); "
        "linear / sqrt: lr x (B / base_batch_size) or its square root (Goyal et al. 2017); "
        "tuned: every lr of lr_grid at every batch size, the best chosen on validation loss (Shallue et al. 2019).",
    )
    lr_grid: list[PositiveFloat] = Field(
        [], description="Learning rates tried at every batch size when lr_rule is tuned (at least 2)."
    )
    base_batch_size: PositiveInt = Field(32, description="Batch size at which lr applies unscaled.")
    warmup: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of steps with linear lr warmup from 0.")

    @field_validator("lr_rule", mode="before")
    @classmethod
    def _none_is_fixed(cls, rule: object) -> object:
        return "fixed" if rule == "none" else rule

    @model_validator(mode="after")
    def _grid_for_tuned(self) -> "Optim":
        if self.lr_rule == "tuned" and len(set(self.lr_grid)) < 2:
            raise ValueError("lr_rule 'tuned' needs lr_grid with at least 2 distinct learning rates")
        if self.lr_rule != "tuned" and self.lr_grid:
            raise ValueError(f"lr_grid is only used by lr_rule 'tuned', not {self.lr_rule!r}")
        return self

    def candidate_lrs(self) -> list[float]:
        """The base learning rates a cell trains: the grid when tuned, else lr alone."""
        return sorted(set(self.lr_grid)) if self.lr_rule == "tuned" else [self.lr]


class Budget(Strict):
    """How much training every run gets: the same samples for every batch size, or the same steps."""

    unit: Literal["epochs", "samples", "steps"] = Field(
        "epochs", description="epochs or samples: fixed data budget (steps = budget / batch size); steps: fixed updates."
    )
    amount: PositiveFloat = Field(description="Budget in the chosen unit.")

    def steps(self, batch_size: int, n_train: int) -> int:
        """Optimizer steps for one run at this batch size (at least one)."""
        if self.unit == "steps":
            return max(1, int(round(self.amount)))
        samples = self.amount * n_train if self.unit == "epochs" else self.amount
        return max(1, int(round(samples / batch_size)))


class Training(Strict):
    """How runs are executed: the engine, micro-batching and precision."""

    engine: Literal["auto", "batched", "reference"] = Field(
        "auto",
        description="batched: the runs of a cell (seeds x lr grid) trained together, sharing every kernel launch "
        "(batchlab.training.engine); reference: one run after another by the reference trainer (batchlab.training.reference); "
        "auto: batched on a GPU, reference on a CPU (where batching runs does not pay: docs/benchmarks.md).",
    )
    micro_batch_size: PositiveInt | None = Field(
        None,
        description="Split each batch into micro-batches of this size and accumulate their gradients (same "
        "effective batch); default: the whole batch, halved automatically by the batched engine on CUDA out-of-memory.",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32, or bf16 autocast of the forward pass (parameters and optimizer state stay fp32)."
    )
    cuda_graphs: Literal["auto", "require", "off"] = Field(
        "auto",
        description="Batched engine on CUDA: replay each step as a captured CUDA graph. auto: capture, and if capture "
        "fails train eagerly, with the reason in the job log and the run table's cuda_graph_fallback column; require: a "
        "failed capture fails the job; off: eager steps. It changes how fast a cell trains, not its numbers, so editing "
        "it retrains nothing.",
    )

    @field_validator("cuda_graphs", mode="before")
    @classmethod
    def _bool_is_auto_or_off(cls, value: object) -> object:
        """true/false, the setting's earlier form, read as auto/off."""
        return {True: "auto", False: "off"}.get(value, value) if isinstance(value, bool) else value
