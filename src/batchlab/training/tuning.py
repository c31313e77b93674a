"""The tuned learning-rate protocol: at each batch size, the best rate of a grid, chosen on validation data.

Shallue et al. (2019) and the Deep Learning Tuning Playbook compare batch sizes each at its own best
learning rate, chosen on validation data and never on test data. A rate is ranked by how many of its
seeds diverged (fewer is better), then by its mean final validation loss over the seeds that did not;
diverged runs never enter that mean and are counted in the table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


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
