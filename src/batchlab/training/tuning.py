"""The tuned learning-rate protocol: at each batch size, the best rate of a grid, chosen on validation data.

A fixed-budget cell ranks its rates by final validation loss (rank_learning_rates); a train-to-target cell ranks
them by steps to the target, stopping trials that can no longer win (Pruner, rank_by_steps, next_rate).

Shallue et al. (2019) and the Deep Learning Tuning Playbook compare batch sizes each at its own best
learning rate, chosen on validation data and never on test data. A rate is ranked by how many of its
seeds diverged (fewer is better), then by its mean final validation loss over the seeds that did not;
diverged runs never enter that mean and are counted in the table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from batchlab.measure.crossing import steps_to_target


def rank_learning_rates(runs: pd.DataFrame, metric: str = "val_loss") -> pd.DataFrame:
    """One row per base learning rate: seeds, diverged seeds, mean metric of the rest, and `selected`."""
    rows = []
    for lr, group in runs.groupby("base_lr", sort=True):
        finite = group.loc[~group["diverged"].astype(bool), metric].astype(float)
        finite = finite[np.isfinite(finite)]
        rows.append(
            {
                "base_lr": float(lr),
                "n_seeds": int(len(group)),
                "n_diverged": int(len(group) - len(finite)),
                f"mean_{metric}": float(finite.mean()) if len(finite) else math.nan,
            }
        )
    table = pd.DataFrame(rows)
    score = table[f"mean_{metric}"].fillna(np.inf)
    order = np.lexsort((table["base_lr"].to_numpy(), score.to_numpy(), table["n_diverged"].to_numpy()))
    table["rank"] = np.empty(len(table), dtype=int)
    table.loc[table.index[order], "rank"] = np.arange(1, len(table) + 1)
    table["selected"] = table["rank"] == 1
    return table


class Pruner:
    """Stops a rate-tuning trial once it can no longer win, and ranks the trials by steps to the target.

    A rate's score is the mean steps to the target over the tuning seeds (infinite where a seed diverged, was
    stopped or never reached it). At a logged step s a trial still short of the target will cross after s, so its
    rate's score is more than (the other seeds' known crossings + s) / seeds; once that bound reaches the best
    finished score the trial stops. Interim losses rank nothing: high rates lead early and then plateau.
    """

    def __init__(self, seeds: list[int], target: float, interpolate: bool = True):
        self.seeds, self.target, self.interpolate = list(seeds), target, interpolate
        self.crossings: dict[tuple[float, int], float] = {}

    def reached(self, key: tuple[float, int], curve: list[dict]) -> float:
        """Record a trial that reached the target; returns its crossing, interpolated as the analysis places it."""
        crossing = steps_to_target([c["step"] for c in curve], [c["val_loss"] for c in curve], self.target,
                                   self.interpolate)
        self.crossings[key] = crossing
        return crossing

    def finished(self, key: tuple[float, int], reached: bool, curve: list[dict]) -> None:
        """Record a trial trained one after another, once it ended."""
        if reached:
            self.reached(key, curve)
        else:
            self.failed(key)

    def failed(self, key: tuple[float, int]) -> None:
        """Record a trial that diverged, was stopped, or ended at its cap short of the target."""
        self.crossings[key] = math.inf

    def best(self) -> float:
        """The best finished score: the lowest mean crossing of a rate all of whose seeds have finished."""
        scores = [self._known(lr) for lr in {lr for lr, _ in self.crossings}]
        return min((sum(c) / len(c) for c in scores if len(c) == len(self.seeds)), default=math.inf)

    def gives_up(self, key: tuple[float, int], step: int) -> bool:
        """Whether trial `key`, short of the target at `step`, can no longer beat the best finished rate."""
        lr, seed = key
        others = [c for (r, s), c in self.crossings.items() if r == lr and s != seed]
        bound = (sum(others) + step) / len(self.seeds)
        return bound >= self.best()

    def _known(self, lr: float) -> list[float]:
        return [c for (r, _), c in self.crossings.items() if r == lr]


def rank_by_steps(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per base rate of the tuning trials: seeds, diverged and stopped trials, mean steps to the target
    (infinite unless every seed reached it), rank and `selected` (none when no rate reached the target)."""
    rows = []
    for lr, group in trials.groupby("base_lr", sort=True):
        crossing = group["crossing_steps"].astype(float).to_numpy()
        rows.append({
            "base_lr": float(lr),
            "n_seeds": int(len(group)),
            "n_diverged": int(group["diverged"].astype(bool).sum()),
            "n_stopped": int((group["pruned_step"] >= 0).sum()),
            "mean_steps_to_target": float(crossing.mean()) if np.isfinite(crossing).all() else math.inf,
        })
    table = pd.DataFrame(rows)
    order = np.lexsort((table["base_lr"].to_numpy(), table["mean_steps_to_target"].to_numpy()))
    table["rank"] = np.empty(len(table), dtype=int)
    table.loc[table.index[order], "rank"] = np.arange(1, len(table) + 1)
    table["selected"] = (table["rank"] == 1) & np.isfinite(table["mean_steps_to_target"])
    return table


def next_rate(table: pd.DataFrame, factor: float) -> float | None:
    """The base rate that extends the grid, or None when its best rate is inside it.

    A best rate at the low edge extends it down, at the high edge up. When no rate reached the target: every rate
    diverged, down; the highest rate trained without diverging, up; otherwise the cap, not the rate, is short."""
    rates = table["base_lr"].to_numpy()
    lo, hi = rates.min(), rates.max()
    if table["selected"].any():
        best = float(table.loc[table["selected"], "base_lr"].item())
        return lo / factor if best == lo else hi * factor if best == hi else None
    diverged = table["n_diverged"].to_numpy() > 0
    if diverged.all():
        return lo / factor
    if not diverged[rates == hi].any():
        return hi * factor
    return None


def edge_note(table: pd.DataFrame, factor: float) -> str:
    """Why the chosen rate may not be the tuned one: it lies at the edge of the rates tried, or none reached."""
    if not table["selected"].any():
        return "no rate of the grid reached the target"
    return "best rate at the edge of the grid" if next_rate(table, factor) is not None else ""
