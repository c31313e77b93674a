"""The `advise` block: a bounded pilot that picks a batch size and learning rate by successive halving.

The pilot trains every candidate (batch size x rate) toward the study's to_target target on an equal wall-time
budget, keeps the best 1/eta after each rung and gives the survivors eta times more time, all within `minutes`
(batchlab.training.halving, batchlab.training.pilot). One seed: a quick answer, without the interval the full
train-to-target protocol gives.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from batchlab.config.base import Strict, _no_repeats

MIN_BATCH_SIZES = 3  # fewer leaves nothing to halve


class Advise(Strict):
    """A pilot of the batch-size recommendation: successive halving over batch sizes and rates in a wall-time cap."""

    minutes: PositiveFloat = Field(
        description="The pilot's cap in wall minutes, the throughput measurement and the evaluations included; the "
        "halving schedule is fitted to it and a run still going when it is reached is stopped (and recorded as such)."
    )
    batch_sizes: list[PositiveInt] | None = Field(
        None, description=f"Batch sizes the pilot tries, at least {MIN_BATCH_SIZES}, each at most the training split "
        "(default: to_target's batch sizes, or the study's)."
    )
    eta: Annotated[int, Field(ge=2)] = Field(
        3, description="The halving factor: after each rung the best 1/eta of the candidates go on, with eta times the time."
    )
    seed: Annotated[int, Field(ge=0)] = Field(0, description="The one seed every candidate trains with.")

    @field_validator("batch_sizes")
    @classmethod
    def _sorted_unique(cls, sizes: list[int] | None) -> list[int] | None:
        return None if sizes is None else sorted(_no_repeats(sizes, "advise.batch_sizes"))

    def sizes(self, study) -> list[int]:
        """The batch sizes the pilot tries: its own, or to_target's, or the study's."""
        t = study.to_target
        return self.batch_sizes or (t.batch_sizes if t is not None and t.batch_sizes else study.batch_sizes)

    def check(self, study) -> None:
        """What the pilot needs of its study: the target (to_target), at least MIN_BATCH_SIZES batch sizes that fit the
        training split, and no scaling grid. Raises ValueError naming the field."""
        if study.to_target is None:
            raise ValueError("advise needs a to_target block: the pilot trains toward its target")
        if study.scaling is not None:
            raise ValueError("advise is not run across a scaling grid: give it to a study without `scaling`")
        sizes = self.sizes(study)
        if len(sizes) < MIN_BATCH_SIZES:
            where = "" if self.batch_sizes else " (from to_target.batch_sizes or the study's batch_sizes)"
            raise ValueError(f"advise.batch_sizes: the pilot needs at least {MIN_BATCH_SIZES} batch sizes to halve, "
                             f"got {sizes}{where}")
        if study.data.facts_known():
            too_big = [b for b in sizes if b > study.data.n_train()]
            if too_big:
                raise ValueError(f"advise.batch_sizes {too_big} exceed the training set ({study.data.n_train()} samples)")
