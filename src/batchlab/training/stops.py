"""Where each of the batched engine's K runs stopped: diverged, reached its target, or pruned by the rate tuning.

A stopped run is frozen (masked out of the update) while the others go on; the steps are kept per run, saved with
the resume state, and handed to the pruner so that a resumed cell ranks its trials as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchlab.training.tuning import Pruner

KINDS = ("diverged", "reached", "pruned")


@dataclass
class Stops:
    """The logged step at which each run diverged, reached the target or was pruned (None while it goes on)."""

    k: int
    diverged: list[int | None] = field(default_factory=list)
    reached: list[int | None] = field(default_factory=list)
    pruned: list[int | None] = field(default_factory=list)

    def __post_init__(self):
        for kind in KINDS:
            if not getattr(self, kind):
                setattr(self, kind, [None] * self.k)

    @classmethod
    def from_state(cls, k: int, saved: dict) -> "Stops":
        """The stops saved by `state` (state saved before a kind existed has none of it)."""
        lists = {kind: [None if d < 0 else d for d in saved.get(kind, [-1] * k)] for kind in KINDS}
        return cls(k, **lists)

    def state(self) -> dict:
        return {kind: [-1 if d is None else d for d in getattr(self, kind)] for kind in KINDS}

    def stopped(self) -> list[int | None]:
        """Each run's stopping step, whatever stopped it (None while it goes on)."""
        return [next((x for x in xs if x is not None), None) for xs in zip(self.diverged, self.reached, self.pruned)]

    def going(self) -> list[int]:
        return [k for k, d in enumerate(self.stopped()) if d is None]

    def tell(self, pruner: Pruner | None, runs: list, ks, curves: list[list[dict]]) -> None:
        """Hand the pruner the runs among ks that have finished: their crossing, or a failure."""
        for k in ks if pruner is not None else ():
            if self.reached[k] is not None:
                pruner.reached(runs[k], curves[k])
            elif self.diverged[k] is not None or self.pruned[k] is not None:
                pruner.failed(runs[k])

    def prune(self, pruner: Pruner | None, runs: list, active: list[int], step: int, curves) -> None:
        """At a logged step: tell the pruner which runs finished here, then stop those that can no longer win."""
        if pruner is None:
            return
        self.tell(pruner, runs, active, curves)
        for k in active:
            if self.diverged[k] is None and self.reached[k] is None and pruner.gives_up(runs[k], step):
                self.pruned[k] = step
                pruner.failed(runs[k])
