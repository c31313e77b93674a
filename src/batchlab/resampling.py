"""Resampling seeds: the bootstrap every interval of the scorecard and the critical-batch table uses.

Seeds are the replicates. Runs of one seed share their initial weights and data order at every batch
size (and in every cell of a scaling grid), so a draw resamples whole seeds and keeps them paired.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def seed_bootstrap(statistic, n_units: int, n_boot: int) -> tuple[object, list]:
    """The statistic on all units, and on n_boot resamples of them with replacement (none below 2 units).

    statistic(columns) gets an index array into the units (seeds, paired across batch sizes); the draws
    come from default_rng(0), so every test is reproducible. Means of all-NaN columns (every resampled
    run of a batch size diverged) give NaN without a warning.
    """
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = statistic(np.arange(n_units)) if n_units else None
        draws = [statistic(rng.integers(0, n_units, n_units)) for _ in range(n_boot)] if n_units >= 2 else []
    return point, draws


def percentile_interval(draws, level: float) -> tuple[float, float]:
    """The (1 - level)/2 and (1 + level)/2 quantiles of the finite draws (NaN, NaN if none)."""
    values = np.asarray(draws, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)
