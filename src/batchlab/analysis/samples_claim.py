"""The scorecard's claim that samples seen predict the metric better than steps or batch size (Vaessen & van
Leeuwen 2024), scored at or below the measured B_crit, where samples seen should set the result."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from batchlab.analysis.b_crit_claims import b_crit_of_seeds
from batchlab.analysis.resampling import describe_interval, percentile_interval, seed_bootstrap


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
    per_seed = [leads(np.array([i])) for i in range(n_units)]
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
        "seed_values": [d[weaker] for d in per_seed],
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
        f"over batch size {point['over_batch']:+.3f} [{o_b[0]:+.3f}, {o_b[1]:+.3f}]"
        + (f"; {text}" if (text := describe_interval([d[weaker] for d in draws], point[weaker], *intervals[weaker],
                                                      n_units, level)) else ""),
        "verdict": verdict,
    }


MIN_REGIME_SIZES = 3  # batch sizes the samples-seen claim needs within its regime


def below_b_crit(curves: pd.DataFrame, steps: pd.DataFrame | None) -> tuple[pd.DataFrame, str, str]:
    """The curves of the batch sizes at or below the measured B_crit, where samples seen should set the result
    (McCandlish et al.'s perfect-scaling regime), the regime in words, and why the claim cannot be scored there
    ('' when it can): B_crit not measured, or fewer than MIN_REGIME_SIZES batch sizes within it."""
    if steps is None or steps.empty:
        return curves, "regime: every batch size", "no steps to target: B_crit, and so the claim's regime, is unknown"
    b_crit, flag = b_crit_of_seeds(steps)(sorted(steps["seed"].unique()))
    if flag:
        return curves, "regime: every batch size", f"B_crit, the edge of the claim's regime, is not a measurement: {flag}"
    inside = curves[curves["batch_size"] <= b_crit]
    sizes = sorted(int(b) for b in inside["batch_size"].unique())
    regime = f"regime: batch sizes at or below B_crit = {b_crit:.3g} ({', '.join(map(str, sizes)) or 'none'})"
    if len(sizes) < MIN_REGIME_SIZES:
        why = f"{len(sizes)} batch sizes lie at or below B_crit; the claim needs {MIN_REGIME_SIZES}"
        return (inside, regime, why) if sizes else (curves, f"{regime}: the statistic is over every batch size", why)
    return inside, regime, ""
