"""The trend claim's test on a run table: Spearman's rho of a metric's seed means on batch size, with the batch
sizes as the units (batchlab.analysis.significance), its Fisher interval and its verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from batchlab.analysis.significance import SPEARMAN_VARIANCE_FACTOR, rho_equivalence_p, spearman_trend, trend_verdict

MIN_TREND_SIZES = 4  # the fewest batch sizes whose every ordering can reach p < 0.05 (1/24)

HIGHER_IS_BETTER = ("accuracy", "auc", "r2")
SIGN = {"increases_with_batch_size": 1, "decreases_with_batch_size": -1}


def _fisher_interval(rho: float, n: int, level: float) -> tuple[float, float]:
    """Fisher's z interval of Spearman's rho over n units (standard error sqrt(1.06 / (n - 3)))."""
    if not math.isfinite(rho) or n <= 3:
        return math.nan, math.nan
    half = norm.ppf(0.5 + level / 2) * math.sqrt(SPEARMAN_VARIANCE_FACTOR / (n - 3))
    z = math.atanh(min(max(rho, -1 + 1e-12), 1 - 1e-12))
    return math.tanh(z - half), math.tanh(z + half)


def trend_test(
    table: pd.DataFrame, x: str, metric: str, expect: str, min_effect: float = 0.5, alpha: float = 0.05,
    n_perm: int = 20000, level: float = 0.95, unit: str = "seed",
) -> dict:
    """Spearman's rho of `metric` (mean over units) against `x`, tested with the values of x as the units.

    A permutation test over the orderings of x: an effect shared by the units of one x (a data order, a
    learning rate that suits one batch size) is part of the null, not evidence. table: one row per (x, unit).
    """
    sign = SIGN[expect]
    finite = table[np.isfinite(table[metric].astype(float))]
    means = finite.groupby(x)[metric].mean().sort_index()
    sizes, values = means.index.to_numpy(dtype=float), means.to_numpy(dtype=float)
    n_units = int(finite[unit].nunique()) if len(finite) else 0
    test = spearman_trend(sizes, values, n_perm=n_perm, seed=0)
    p_claimed, p_opposite = (test.p_increasing, test.p_decreasing) if sign > 0 else (test.p_decreasing, test.p_increasing)
    p_equivalent = rho_equivalence_p(test.rho, len(sizes), min_effect)
    if len(sizes) < MIN_TREND_SIZES or not math.isfinite(test.rho):
        verdict, reason = "inconclusive", f"{len(sizes)} batch sizes with finite values; the test needs {MIN_TREND_SIZES}"
    else:
        verdict, reason = trend_verdict(test.rho, p_claimed, p_opposite, p_equivalent, sign, min_effect, alpha)
    low, high = _fisher_interval(test.rho, len(sizes), level)
    how = "every ordering" if test.exact else f"{n_perm} random orderings"
    return {
        "statistic": "spearman_rho",
        "estimate": test.rho,
        "low": low,
        "high": high,
        "level": level,
        "n_boot": 0,
        "n_x": len(sizes),
        "n_units": n_units,
        "n_excluded_runs": int(len(table) - len(finite)),
        "at_smallest": float(values[0]) if len(values) else math.nan,
        "at_largest": float(values[-1]) if len(values) else math.nan,
        "p_value": p_claimed,
        "p_refute": min(p_opposite, p_equivalent),
        "min_effect": min_effect,
        "interval_kind": f"Fisher z over {len(sizes)} batch sizes" if math.isfinite(low)
        else f"no interval: Fisher z needs {MIN_TREND_SIZES} batch sizes, {len(sizes)} have finite values",
        "detail": f"permutation test over the batch sizes ({how}): p = {p_claimed:.3g} in the claimed direction, "
        f"{p_opposite:.3g} in the opposite one; equivalence (|ρ| < {min_effect:g}) p = {p_equivalent:.3g}; "
        f"means over {n_units} {unit}s; {reason}",
        "verdict": verdict,
    }
