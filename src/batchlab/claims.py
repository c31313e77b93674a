"""The replication scorecard: each published claim a study lists, tested on its runs, with a verdict.

Every test gives an estimate with a percentile bootstrap interval over seeds (seeds resampled with
replacement, the same seeds at every batch size, since runs of one seed are paired), at level L
(default 0.95), and a verdict from where the interval lies (STATISTICS holds each test's rules):
- trend claims ("metric increases with batch size"): Spearman's rank correlation between batch size
  and the metric's mean over seeds;
- "samples seen predict the metric better than steps or batch size" (Vaessen & van Leeuwen 2024): over
  every logged point of the seed-mean curves, the lead of |rho| against samples seen over |rho| against
  steps and over |rho| against batch size, each with its own interval;
- "the same budget reaches the same metric up to the critical batch size, not beyond" (Goyal et al.
  2017; McCandlish et al. 2018): the relative change from the smallest batch size, averaged over the
  batch sizes at or below the study's fitted B_crit and over those above it, against a tolerance;
- claims across a scaling grid (Zhang et al. 2025) are tested in batchlab.scaling with the same rules.
Inconclusive also covers too little data to say (fewer than 3 batch sizes or 2 seeds with finite
values). Runs whose metric is not finite (diverged, not evaluated) are left out and counted.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from batchlab.resampling import percentile_interval, seed_bootstrap

STATISTICS = {
    "spearman_rho": {
        "what": "Spearman's rank correlation ρ between batch size and the metric's mean over seeds (for gradient "
        "spread: the probe batch size, over the runs measured at their last checkpoint)",
        "replicated": "the interval of ρ lies wholly on the claimed side of 0",
        "not replicated": "the interval lies wholly on the opposite side of 0",
        "inconclusive": "the interval contains 0, or fewer than 3 batch sizes or 2 seeds have finite values",
    },
    "samples_advantage": {
        "what": "the lead of |ρ| of the metric against samples seen over |ρ| against optimizer steps, and over |ρ| "
        "against batch size (Spearman over every logged point of the seed-mean curves of all batch sizes); the "
        "weaker lead is shown",
        "replicated": "the intervals of both leads lie wholly above 0 (samples seen order the metric best)",
        "not replicated": "the interval of a lead lies wholly below 0 (steps or batch size order it better)",
        "inconclusive": "otherwise, or there are fewer than 2 seeds or 3 batch sizes",
    },
    "degradation_above_b_crit": {
        "what": "relative change of the final metric from the smallest batch size (positive = worse), paired by seed, "
        "averaged over the batch sizes above the study's fitted B_crit (estimate, interval) and over those above the "
        "smallest and at or below B_crit (detail), against the claim's tolerance τ",
        "replicated": "the change at or below B_crit stays within τ and the change above B_crit exceeds τ",
        "not replicated": "the change at or below B_crit exceeds τ, or the change above B_crit stays within τ",
        "inconclusive": "otherwise, or no batch size lies between the smallest and B_crit, or none above it, "
        "or B_crit could not be fitted",
    },
    "log_slope_data": {
        "what": "slope of log B_crit on log training-set size, least squares over the scaling grid's cells with log "
        "width as a second regressor; B_crit of each cell from the S(B) fit on seed means, a cell counting as not fitted "
        "when its B_crit lies more than 10x outside its batch sizes",
        "replicated": "the interval of the slope lies wholly above 0",
        "not replicated": "the interval lies wholly below 0",
        "inconclusive": "the interval contains 0, or too few cells have a fitted B_crit",
    },
    "log_slope_width": {
        "what": "slope of log B_crit on log model width, least squares over the scaling grid's cells with log "
        "training-set size as a second regressor",
        "replicated": "the interval of the slope lies wholly within ±τ (a width doubled changes B_crit by at most 2^τ)",
        "not replicated": "the interval lies wholly outside ±τ",
        "inconclusive": "the interval overlaps ±τ's edge, or too few cells have a fitted B_crit",
    },
}
VERDICT_RULES = {v: STATISTICS["spearman_rho"][v] for v in ("replicated", "not replicated", "inconclusive")}
HIGHER_IS_BETTER = ("accuracy", "auc", "r2")
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
    rho, draws = seed_bootstrap(lambda cols: _rho(sizes, np.nanmean(values[:, cols], axis=1)), n_units, n_boot)
    rho = math.nan if rho is None else rho
    low, high = percentile_interval(draws, level)
    claimed_low, claimed_high = sorted((sign * low, sign * high))  # the interval as seen from the claim's side
    if len(sizes) < 3 or n_units < 2 or not math.isfinite(rho):
        verdict = "inconclusive"
    else:
        verdict = interval_verdict(claimed_low, claimed_high)
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


def interval_verdict(low: float, high: float, band: tuple[float, float] | None = None) -> str:
    """Verdict from an interval: above 0 replicated, below 0 not, else inconclusive.

    With band (lo, hi) the claim is "the value lies within the band": wholly inside replicated,
    wholly outside not replicated, else inconclusive. NaN bounds give inconclusive.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if band is None:
        return "replicated" if low > 0 else "not replicated" if high < 0 else "inconclusive"
    lo, hi = band
    if lo <= low and high <= hi:
        return "replicated"
    if high < lo or low > hi:
        return "not replicated"
    return "inconclusive"


def _abs_rho(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    return abs(float(spearmanr(x[ok], y[ok]).statistic))


def samples_advantage(points: pd.DataFrame, metric: str) -> dict[str, float]:
    """|rho| of metric against samples_seen, step and batch_size over curve points, and the samples' leads."""
    y = points[metric].to_numpy(dtype=float)
    r = {c: _abs_rho(points[c].to_numpy(dtype=float), y) for c in ("samples_seen", "step", "batch_size")}
    return {**r, "over_steps": r["samples_seen"] - r["step"], "over_batch": r["samples_seen"] - r["batch_size"]}


def samples_predict_test(curves: pd.DataFrame, metric: str, n_boot: int = 2000, level: float = 0.95) -> dict:
    """Whether samples seen order a curve metric better than steps and than batch size (Vaessen & van Leeuwen 2024).

    Two paired differences of |rho|, each with its own interval: replicated when samples lead both, not
    replicated when either alternative leads samples; the weaker lead is the row's estimate and interval.
    """
    finite = curves[np.isfinite(curves[metric].astype(float))]
    grid = finite.pivot_table(index=["batch_size", "step", "samples_seen"], columns="seed", values=metric, aggfunc="mean")
    points = grid.index.to_frame(index=False)
    values = grid.to_numpy(dtype=float)
    n_units, n_sizes = values.shape[1], points["batch_size"].nunique()

    def leads(cols: np.ndarray) -> dict[str, float]:
        return samples_advantage(points.assign(**{metric: np.nanmean(values[:, cols], axis=1)}), metric)

    point, draws = seed_bootstrap(leads, n_units, n_boot)
    point = point or dict.fromkeys(("samples_seen", "step", "batch_size", "over_steps", "over_batch"), math.nan)
    intervals = {k: percentile_interval([d[k] for d in draws], level) for k in ("over_steps", "over_batch")}
    weaker = min(("over_steps", "over_batch"), key=lambda k: point[k] if math.isfinite(point[k]) else -math.inf)
    lows = [intervals[k][0] for k in intervals]
    highs = [intervals[k][1] for k in intervals]
    if n_units < 2 or n_sizes < 3 or not all(map(math.isfinite, lows + highs)):
        verdict = "inconclusive"
    elif min(lows) > 0:
        verdict = "replicated"
    elif min(highs) < 0:
        verdict = "not replicated"
    else:
        verdict = "inconclusive"
    by_size = finite.groupby("batch_size")[metric]
    o_s, o_b = intervals["over_steps"], intervals["over_batch"]
    return {
        "statistic": "samples_advantage",
        "estimate": point[weaker],
        "low": intervals[weaker][0],
        "high": intervals[weaker][1],
        "n_x": int(n_sizes),
        "n_units": int(n_units),
        "n_excluded_runs": int(curves.groupby(["batch_size", "seed"]).ngroups - finite.groupby(["batch_size", "seed"]).ngroups),
        "at_smallest": float(by_size.last().iloc[0]) if n_sizes else math.nan,
        "at_largest": float(by_size.last().iloc[-1]) if n_sizes else math.nan,
        "detail": f"|ρ| vs samples {point['samples_seen']:.3f}, vs steps {point['step']:.3f}, vs batch size "
        f"{point['batch_size']:.3f}; lead over steps {point['over_steps']:+.3f} [{o_s[0]:+.3f}, {o_s[1]:+.3f}], "
        f"over batch size {point['over_batch']:+.3f} [{o_b[0]:+.3f}, {o_b[1]:+.3f}]",
        "verdict": verdict,
    }


def degradation_test(
    table: pd.DataFrame, metric: str, b_crit: float, tolerance: float, n_boot: int = 2000, level: float = 0.95
) -> dict:
    """Relative change from the smallest batch size below and above B_crit (linear scaling's promise)."""
    sign = -1.0 if any(key in metric for key in HIGHER_IS_BETTER) else 1.0
    finite = table[np.isfinite(table[metric].astype(float))]
    grid = finite.pivot_table(index="batch_size", columns="seed", values=metric, aggfunc="mean").sort_index()
    sizes, values = grid.index.to_numpy(dtype=float), grid.to_numpy(dtype=float)
    n_units = values.shape[1]
    change = sign * (values - values[:1]) / np.abs(values[:1]) if len(values) else values
    below = (sizes > sizes.min()) & (sizes <= b_crit) if len(sizes) else sizes.astype(bool)
    above = sizes > b_crit if len(sizes) else sizes.astype(bool)

    def group_means(cols: np.ndarray) -> tuple[float, float]:
        per_size = np.nanmean(change[:, cols], axis=1)
        return (float(np.nanmean(per_size[below])) if below.any() else math.nan,
                float(np.nanmean(per_size[above])) if above.any() else math.nan)

    point, draws = seed_bootstrap(group_means, n_units, n_boot)
    below_est, above_est = point or (math.nan, math.nan)
    b_low, b_high = percentile_interval([d[0] for d in draws], level)
    a_low, a_high = percentile_interval([d[1] for d in draws], level)
    if not (math.isfinite(b_crit) and below.any() and above.any() and n_units >= 2):
        verdict = "inconclusive"
    elif b_high <= tolerance and a_low > tolerance:
        verdict = "replicated"
    elif b_low > tolerance or a_high <= tolerance:
        verdict = "not replicated"
    else:
        verdict = "inconclusive"
    return {
        "statistic": "degradation_above_b_crit",
        "estimate": above_est,
        "low": a_low,
        "high": a_high,
        "n_x": int(len(sizes)),
        "n_units": int(n_units),
        "n_excluded_runs": int(len(table) - len(finite)),
        "at_smallest": float(np.nanmean(values[0])) if len(values) else math.nan,
        "at_largest": float(np.nanmean(values[-1])) if len(values) else math.nan,
        "detail": f"B_crit {b_crit:.3g}; change at or below it {below_est:+.3f} [{b_low:+.3f}, {b_high:+.3f}] "
        f"({int(below.sum())} batch sizes), above it {above_est:+.3f} ({int(above.sum())}); tolerance {tolerance:g}",
        "verdict": verdict,
    }


def spread_units(spread: pd.DataFrame) -> pd.DataFrame:
    """Gradient spread at the final checkpoint, one replicate per trained run (cell batch size, seed)."""
    final = spread[spread["fraction"] == spread["fraction"].max()]
    return final.assign(run=final["batch_size"].astype(str) + "/" + final["seed"].astype(str))


def fitted_b_crit(critical: pd.DataFrame | None) -> float:
    """The study's B_crit point estimate from its critical-batch table (NaN when not fitted)."""
    if critical is None or critical.empty:
        return math.nan
    row = critical[critical["quantity"] == "b_crit"]
    return float(row["estimate"].iloc[0]) if len(row) else math.nan


SCORECARD_COLUMNS = [
    "claim", "source", "metric", "expect", "statistic", "estimate", "low", "high", "level", "n_boot",
    "n_x", "n_units", "n_excluded_runs", "at_smallest", "at_largest", "detail", "verdict", "rule",
]


def scorecard_row(claim, result: dict, level: float, n_boot: int) -> dict:
    """One scorecard row: the claim, its test's numbers, the verdict and the rule that gave it."""
    row = {"claim": claim.id, "source": claim.source, "metric": claim.metric, "expect": claim.expect,
           "level": level, "n_boot": n_boot, "detail": "", **result}
    row["rule"] = STATISTICS[row["statistic"]][row["verdict"]]
    return {k: row.get(k) for k in SCORECARD_COLUMNS}


def evaluate_claims(
    claims,
    table: pd.DataFrame,
    spread: pd.DataFrame | None = None,
    n_boot: int = 2000,
    curves: pd.DataFrame | None = None,
    critical: pd.DataFrame | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """One scorecard row per per-study claim (claims across a scaling grid are evaluated in batchlab.scaling)."""
    rows = []
    for claim in claims:
        if claim.expect == "predicted_by_samples_seen":
            if curves is None or curves.empty:
                raise ValueError(f"claim {claim.id!r}: no loss curves")
            result = samples_predict_test(curves, claim.metric, n_boot, level)
        elif claim.expect == "holds_until_critical_batch":
            if claim.metric not in table:
                raise ValueError(f"claim {claim.id!r}: metric {claim.metric!r} is not a column of the run table")
            result = degradation_test(table, claim.metric, fitted_b_crit(critical), claim.tolerance_or_default(), n_boot, level)
        elif claim.metric == "gradient_spread":
            if spread is None or spread.empty:
                raise ValueError(f"claim {claim.id!r}: no gradient spread measured")
            result = trend_test(spread_units(spread), "probe_batch_size", "spread", claim.expect, n_boot, level, unit="run")
        elif claim.metric == "critical_batch_size":
            continue
        else:
            if claim.metric not in table:
                raise ValueError(f"claim {claim.id!r}: metric {claim.metric!r} is not a column of the run table")
            result = trend_test(table, "batch_size", claim.metric, claim.expect, n_boot, level)
        rows.append(scorecard_row(claim, result, level, n_boot))
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)
