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


def tail(level: float) -> float:
    """The share of the draws a percentile interval at `level` leaves out on each side: (1 - level) / 2."""
    return (1 - level) / 2


def enough_draws(share: float, level: float) -> bool:
    """Whether a share of draws with a value leaves room for an interval at `level` (at most a tail without one)."""
    return 1 - share <= tail(level) + 1e-12


def _split(draws, unknown) -> tuple[np.ndarray, int, int]:
    """The finite draws, how many draws have an unknown value, and how many an undefined one (left out)."""
    values = np.asarray(draws, dtype=float).ravel()
    finite = np.isfinite(values)
    unknown = ~finite if unknown is None else np.asarray(unknown, dtype=bool).ravel() & ~finite
    return values[finite], int(unknown.sum()), int((~finite).sum() - unknown.sum())


def percentile_interval(draws, level: float, unknown=None) -> tuple[float, float]:
    """The (1 - level)/2 and (1 + level)/2 quantiles of the draws, wherever the draws of unknown value would lie.

    A draw without a finite value whose statistic exists but is not known (B_crit flagged in it: outside
    the batch sizes, where the fit only extrapolates) still was a draw: leaving it out would truncate the
    distribution on the side where it lay, and with few seeds the interval then ended at the estimate.
    With a share m of such draws, the ends are the quantiles (a - m)/(1 - m) and 1 - (a - m)/(1 - m) of
    the others, a = (1 - level)/2: they hold even if all the unknown draws lay on one side. With m above a
    no end holds and the interval is (NaN, NaN), as it is without any finite draw.

    unknown: a mask of the draws whose missing value is unknown rather than undefined (a resample with no
    measured seed has no B_simple at all); non-finite draws outside it are left out. None: all of them.
    """
    finite, n_unknown, _ = _split(draws, unknown)
    if not len(finite):
        return math.nan, math.nan
    alpha = tail(level)
    missing = n_unknown / (len(finite) + n_unknown)
    if missing > alpha + 1e-12:
        return math.nan, math.nan
    inner = (alpha - missing) / (1 - missing)
    low, high = np.quantile(finite, [inner, 1 - inner])
    return float(low), float(high)
