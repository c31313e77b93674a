"""The learning rate tuned at one batch size of a train-to-target cell, by steps to the target.

McCandlish et al.'s S(B) = S_min (1 + B_crit / B) describes steps to a target when the rate is tuned at every batch
size; at one fixed rate S(B) flattens where that rate binds, and B_crit follows the rate. The grid is centred on the
scaling rule's rate, trained on tuning seeds apart from the seeds that report S(B) (so the choice does not bias them
low), ranked by the interpolated crossing of the target, extended one rate at a time while the best lies at its edge,
and its trials are stopped once they can no longer win (batchlab.training.tuning.Pruner).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd

from batchlab.config import RateGrid, Study
from batchlab.measure.crossing import steps_to_target
from batchlab.training.run import RunResult, StopAt
from batchlab.training.tuning import Pruner, edge_note, next_rate, rank_by_steps, rank_learning_rates

Trainer = Callable[[list[tuple[float, int]], dict[int, tuple[float, ...]], StopAt], dict[tuple[float, int], RunResult]]


@dataclass
class Search:
    """What the tuning left: the chosen base rate, every trial, and why the choice may fall short of tuned."""

    base_lr: float
    trials: pd.DataFrame
    n_rates: int
    note: str  # "" when the best rate lies inside the rates tried and reached the target
    choice: str
    steps_skipped: int  # steps the stopped trials did not run, up to their caps (an upper bound on the saving)


def grid_rates(study: Study, grid: RateGrid) -> list[float]:
    """The grid's base rates, the centre first and then outwards, so that the first finished trials prune the rest."""
    centre = study.optim.lr
    rates = [centre * m for m in grid.multipliers()]
    return sorted(rates, key=lambda r: (abs(math.log(r / centre)), r))


def tune(study: Study, batch_size: int, grid: RateGrid, stop_at: StopAt, train: Trainer) -> Search:
    """Train the grid's trials on its tuning seeds (then its extensions) and choose the rate with the fewest steps."""
    seeds = grid.tuning_seeds
    pruner = Pruner(seeds, stop_at.value, study.steps_to_target.interpolate)
    at = replace(stop_at, pruner=pruner)
    no_checkpoints = {seed: () for seed in seeds}
    results: dict[tuple[float, int], RunResult] = {}
    rounds: dict[float, int] = {}
    pending, extensions = grid_rates(study, grid), 0
    while True:
        rounds.update({lr: extensions for lr in pending})
        results.update(train([(lr, seed) for lr in pending for seed in seeds], no_checkpoints, at))
        trials = _trials(study, results, rounds, stop_at.value)
        table = rank_by_steps(trials)
        ahead = next_rate(table, grid.factor)
        if ahead is None or extensions == grid.extensions:
            break
        pending, extensions = [ahead], extensions + 1
    trials = trials.merge(table[["base_lr", "rank", "selected"]], on="base_lr", how="left")
    if table["selected"].any():
        base, choice = float(table.loc[table["selected"], "base_lr"].item()), "fewest steps to the target"
    else:
        fallback = rank_learning_rates(trials)
        base = float(fallback.loc[fallback["selected"], "base_lr"].item())
        choice = "lowest final validation loss (no rate reached the target)"
    note = edge_note(table, grid.factor)
    if note and extensions:
        note += f" after {extensions} extension{'s' if extensions > 1 else ''}"
    stopped = trials[trials["pruned_step"] >= 0]
    cap = study.budget.steps(batch_size, int(trials["n_train"].iloc[0]))
    return Search(base, trials, len(table), note, choice, int((cap - stopped["pruned_step"]).sum()))


def _trials(study: Study, results: dict, rounds: dict[float, int], target: float) -> pd.DataFrame:
    """One row per tuning trial: its record, its crossing of the target (NaN where it never reached it) and round."""
    rows = []
    for (lr, seed), result in sorted(results.items()):
        curve = result.curve
        crossing = (
            steps_to_target([c["step"] for c in curve], [c["val_loss"] for c in curve], target,
                            study.steps_to_target.interpolate)
            if result.record.get("reached_target") else math.nan
        )
        rows.append({**result.record, "multiplier": lr / study.optim.lr, "crossing_steps": crossing,
                     "tuning_round": rounds[lr]})
    trials = pd.DataFrame(rows)
    trials["crossing_steps"] = trials["crossing_steps"].astype(float).where(np.isfinite(trials["crossing_steps"]))
    return trials
