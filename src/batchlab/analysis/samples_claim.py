"""The scorecard's claim that samples seen predict the metric better than steps or batch size (Vaessen & van
Leeuwen 2024), scored at or below the measured B_crit, where samples seen should set the result."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from batchlab.analysis.b_crit_claims import b_crit_of_seeds
from batchlab.analysis.resampling import counts, describe_interval, percentile_interval, seed_draws


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


def weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of values ([n_boot, n]), each item's average rank when it is repeated as often as its weight says (ties
    share the mean of the ranks they span): the ranks of Spearman's ρ on a resample that draws items with repetition."""
    order = np.argsort(values, axis=1, kind="stable")
    v, w = np.take_along_axis(values, order, axis=1), np.take_along_axis(weights, order, axis=1)
    cum = np.cumsum(w, axis=1)
    new = np.ones(v.shape, dtype=bool)
    new[:, 1:] = v[:, 1:] != v[:, :-1]
    last = np.ones(v.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    before = np.maximum.accumulate(np.where(new, cum - w, 0.0), axis=1)  # weight of the values below the tie group
    through = np.minimum.accumulate(np.where(last, cum, np.inf)[:, ::-1], axis=1)[:, ::-1]  # ... and of the group
    ranks = np.empty_like(v, dtype=float)
    np.put_along_axis(ranks, order, before + (through - before + 1) / 2, axis=1)
    return ranks


def weighted_abs_rho(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """|Spearman's ρ| per row of x and y ([n_boot, n]) with each item counted `weights` times (0: left out, as are
    items whose x or y is not finite); NaN where x or y does not vary, as for _abs_rho."""
    w = np.where(np.isfinite(x) & np.isfinite(y), weights, 0.0)
    rx, ry = weighted_ranks(np.where(w > 0, x, np.inf), w), weighted_ranks(np.where(w > 0, y, np.inf), w)
    total = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(w > 0, rx - (w * rx).sum(axis=1, keepdims=True) / total, 0.0)
        dy = np.where(w > 0, ry - (w * ry).sum(axis=1, keepdims=True) / total, 0.0)
        sxx, syy = (w * dx**2).sum(axis=1), (w * dy**2).sum(axis=1)
        rho = np.abs((w * dx * dy).sum(axis=1) / np.sqrt(sxx * syy))
    ok = (total[:, 0] >= 3) & (sxx > 1e-9 * np.maximum(total[:, 0], 1) ** 3) & (syy > 1e-9 * np.maximum(total[:, 0], 1) ** 3)
    return np.where(ok, rho, np.nan)


def crossed_leads(points: pd.DataFrame, values: np.ndarray, seed_cols: np.ndarray, size_counts: np.ndarray) -> dict:
    """The leads of samples_advantage in each draw ([n_boot] arrays): the metric of every curve point the mean over
    the drawn seeds (seed_cols [n_boot, k]), each point counted as often as its batch size was drawn (size_counts
    [n_boot, batch sizes], in the order of np.unique of the points' batch sizes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = np.nanmean(values[:, seed_cols], axis=2).T  # [n_boot, points]
    _, size_of = np.unique(points["batch_size"].to_numpy(dtype=float), return_inverse=True)
    weights = size_counts[:, size_of]
    r = {c: weighted_abs_rho(np.broadcast_to(points[c].to_numpy(dtype=float), y.shape), y, weights)
         for c in ("samples_seen", "step", "batch_size")}
    return {**r, "over_steps": r["samples_seen"] - r["step"], "over_batch": r["samples_seen"] - r["batch_size"]}


def samples_predict_test(curves: pd.DataFrame, metric: str, n_boot: int = 2000, level: float = 0.95) -> dict:
    """Whether samples seen order a curve metric better than steps and than batch size (Vaessen & van Leeuwen 2024).

    Two paired differences of |rho|, each with its own interval: replicated when samples lead both, not
    replicated when either alternative leads samples; the weaker lead is the row's estimate and interval.
    Each draw resamples the seeds and, independently, the batch sizes with replacement, each drawn batch size
    bringing every point of its curve (a crossed bootstrap), so that an effect a batch size shares across its
    seeds (a data order, a learning rate that suits it) widens the intervals; each draw's deviation from the
    estimate is widened by k/(k - 1), k the batch sizes. A draw whose batch sizes are all one has no |ρ| against
    batch size: it is left out.
    """
    finite = curves[np.isfinite(curves[metric].astype(float))]
    grid = finite.pivot_table(index=["batch_size", "step", "samples_seen"], columns="seed", values=metric, aggfunc="mean")
    points = grid.index.to_frame(index=False)
    values = grid.to_numpy(dtype=float)
    n_units, n_sizes = values.shape[1], points["batch_size"].nunique()

    def leads(cols: np.ndarray) -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return samples_advantage(points.assign(**{metric: np.nanmean(values[:, cols], axis=1)}), metric)

    keys = ("samples_seen", "step", "batch_size", "over_steps", "over_batch")
    point = leads(np.arange(n_units)) if n_units else dict.fromkeys(keys, math.nan)
    per_seed = [leads(np.array([i])) for i in range(n_units)]
    draws = dict.fromkeys(keys, np.array([]))
    if n_units >= 2 and n_sizes >= 2:
        rng = np.random.default_rng(0)
        cols = seed_draws(n_units, n_boot, rng)
        size_counts = counts(seed_draws(n_sizes, n_boot, rng), n_sizes)
        draws = crossed_leads(points, values, cols, size_counts)
        # with k batch sizes a bootstrap sees (k - 1)/k of their spread: each draw's deviation from the estimate is
        # widened by k/(k - 1), as resampling.small_sample_spread widens a unit's (calibrated: the square root of it
        # left up to 4% wrong verdicts at the claim's edge, docs/seed_rule_calibration.md)
        draws = {k: point[k] + n_sizes / (n_sizes - 1) * (v - point[k]) for k, v in draws.items()}
    undefined = {k: np.zeros(len(draws[k]), dtype=bool) for k in ("over_steps", "over_batch")}
    intervals = {k: percentile_interval(draws[k], level, unknown=undefined[k]) for k in ("over_steps", "over_batch")}
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
    described = describe_interval(draws[weaker], point[weaker], *intervals[weaker], n_units, level,
                                  unknown=undefined[weaker])
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
        f"over batch size {point['over_batch']:+.3f} [{o_b[0]:+.3f}, {o_b[1]:+.3f}]; draws: seeds crossed with the "
        f"{n_sizes} batch sizes, each bringing its whole curve" + (f"; {described}" if described else ""),
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
