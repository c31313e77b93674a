"""The replication scorecard: each published claim a study lists, tested on its runs, with a verdict.

A trend claim ("metric increases with batch size") is tested with Spearman's rank correlation between
batch size and the metric's mean over seeds, and a percentile bootstrap interval over seeds (seeds
resampled with replacement, the same seeds at every batch size, since runs of one seed are paired).
Verdicts, with level L (default 0.95):
- replicated: the whole L interval of rho lies on the claimed side of 0;
- not replicated: the whole interval lies on the other side;
- inconclusive: the interval contains 0, or there are too few batch sizes (< 3) or seeds (< 2) to say.
Runs whose metric is not finite (diverged, not evaluated) are left out and counted.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

VERDICT_RULES = {
    "replicated": "the bootstrap interval of Spearman's rho lies wholly on the claimed side of 0",
    "not replicated": "the interval lies wholly on the opposite side of 0",
    "inconclusive": "the interval contains 0, or fewer than 3 batch sizes or 2 seeds have finite values",
}
SIGN = {"increases_with_batch_size": 1, "decreases_with_batch_size": -1}


def _rho(sizes: np.ndarray, means: np.ndarray) -> float:
    ok = np.isfinite(means)
    if ok.sum() < 3 or np.ptp(means[ok]) == 0:
        return math.nan
    return float(spearmanr(sizes[ok], means[ok]).statistic)


def trend_test(
    table: pd.DataFrame, x: str, metric: str, expect: str, n_boot: int = 2000, level: float = 0.95, unit: str = "seed"
) -> dict:
    """Spearman rho of `metric` (mean over units) against `x`, its bootstrap interval over units, and the verdict.

    table: one row per (x, unit); unit is the replicate resampled by the bootstrap (seeds, by default).
    """
    sign = SIGN[expect]
    finite = table[np.isfinite(table[metric].astype(float))]
    grid = finite.pivot_table(index=x, columns=unit, values=metric, aggfunc="mean").sort_index()
    sizes = grid.index.to_numpy(dtype=float)
    values = grid.to_numpy(dtype=float)
    n_units = grid.shape[1]
    rho = _rho(sizes, np.nanmean(values, axis=1)) if n_units else math.nan
    rng = np.random.default_rng(0)
    draws = []
    if n_units >= 2:
        for _ in range(n_boot):
            cols = rng.integers(0, n_units, n_units)
            with warnings.catch_warnings():  # an all-NaN mean: every resampled run of a batch size diverged
                warnings.simplefilter("ignore", RuntimeWarning)
                draws.append(_rho(sizes, np.nanmean(values[:, cols], axis=1)))
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    alpha = (1 - level) / 2
    low, high = (np.quantile(draws, [alpha, 1 - alpha]) if len(draws) else (math.nan, math.nan))
    claimed_low, claimed_high = sorted((sign * low, sign * high))  # the interval as seen from the claim's side
    if len(sizes) < 3 or n_units < 2 or not math.isfinite(rho) or not len(draws):
        verdict = "inconclusive"
    elif claimed_low > 0:
        verdict = "replicated"
    elif claimed_high < 0:
        verdict = "not replicated"
    else:
        verdict = "inconclusive"
    first, last = np.nanmean(values[0]) if len(values) else math.nan, np.nanmean(values[-1]) if len(values) else math.nan
    return {
        "statistic": "spearman_rho",
        "estimate": rho,
        "low": float(low),
        "high": float(high),
        "level": level,
        "n_boot": n_boot,
        "n_x": len(sizes),
        "n_units": n_units,
        "n_excluded_runs": int(len(table) - len(finite)),
        "at_smallest": float(first),
        "at_largest": float(last),
        "verdict": verdict,
    }


def spread_units(spread: pd.DataFrame) -> pd.DataFrame:
    """Gradient spread at the final checkpoint, one replicate per trained run (cell batch size, seed)."""
    final = spread[spread["fraction"] == spread["fraction"].max()]
    return final.assign(run=final["batch_size"].astype(str) + "/" + final["seed"].astype(str))


def evaluate_claims(claims, table: pd.DataFrame, spread: pd.DataFrame | None = None, n_boot: int = 2000) -> pd.DataFrame:
    """One scorecard row per claim: the test's numbers, the verdict and the rule behind it."""
    rows = []
    for claim in claims:
        if claim.metric == "gradient_spread":
            if spread is None or spread.empty:
                raise ValueError(f"claim {claim.id!r}: no gradient spread measured")
            result = trend_test(spread_units(spread), "probe_batch_size", "spread", claim.expect, n_boot, unit="run")
        else:
            if claim.metric not in table:
                raise ValueError(f"claim {claim.id!r}: metric {claim.metric!r} is not a column of the run table")
            result = trend_test(table, "batch_size", claim.metric, claim.expect, n_boot)
        rows.append(
            {
                "claim": claim.id,
                "source": claim.source,
                "metric": claim.metric,
                "expect": claim.expect,
                **result,
                "rule": VERDICT_RULES[result["verdict"]],
            }
        )
    columns = ["claim", "source", "metric", "expect", "statistic", "estimate", "low", "high", "level", "n_boot",
               "n_x", "n_units", "n_excluded_runs", "at_smallest", "at_largest", "verdict", "rule"]
    return pd.DataFrame(rows, columns=columns)
