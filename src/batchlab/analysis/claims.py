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
  batch sizes at or below the study's fitted B_crit and over those above it, against a tolerance, with
  B_crit refitted in every draw from the same resampled seeds;
- "the gradient noise scale predicts the critical batch size" (McCandlish et al. 2018): the ratio
  B_simple / B_crit, B_simple taken at each run's checkpoint closest to its crossing of the target;
- "gradient spread falls as B^-1/2, then flattens" (Vaessen & van Leeuwen 2024): the slope of log
  spread on log batch size over the trained runs, each measured at its own batch size, against -1/2;
- claims across a scaling grid (Zhang et al. 2025) are tested in batchlab.analysis.scaling with the same rules.
A claim that rests on B_crit is inconclusive when the rule of batchlab.analysis.measured flags B_crit (the
reason is written in its detail), or when B_crit is not measured in more than (1 - L)/2 of the draws:
those draws are no less real for having no value, and they could all lie in one tail, so no interval
at level L holds (batchlab.analysis.resampling.percentile_interval). Every detail says how many distinct resamples
the seeds allow (3 for 2 seeds) and when an end of the interval is one seed's own value or the estimate.
Inconclusive also covers too little data to say (fewer than 3 batch sizes or 2 seeds with finite
values). Runs whose metric is not finite (diverged, not evaluated) are left out and counted.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from batchlab.analysis.cbs import seed_mean_steps, steps_matrix
from batchlab.analysis.critical import geometric_mean, noise_at_crossing
from batchlab.analysis.measured import flag as measured_flag
from batchlab.analysis.measured import measured_b_crit
from batchlab.analysis.resampling import describe_interval, enough_draws, no_interval_note, percentile_interval, seed_bootstrap

STATISTICS = {
    "spearman_rho": {
        "symbol": "ρ =",
        "what": "Spearman's rank correlation ρ between batch size and the metric's mean over seeds (for gradient "
        "spread: each measured run's spread at its own batch size, at its last checkpoint)",
        "replicated": "the interval of ρ lies wholly on the claimed side of 0",
        "not replicated": "the interval lies wholly on the opposite side of 0",
        "inconclusive": "the interval contains 0, or fewer than 3 batch sizes or 2 seeds have finite values",
    },
    "samples_advantage": {
        "symbol": "lead of |ρ| =",
        "what": "the lead of |ρ| of the metric against samples seen over |ρ| against optimizer steps, and over |ρ| "
        "against batch size (Spearman over every logged point of the seed-mean curves of all batch sizes); the "
        "weaker lead is shown",
        "replicated": "the intervals of both leads lie wholly above 0 (samples seen order the metric best)",
        "not replicated": "the interval of a lead lies wholly below 0 (steps or batch size order it better)",
        "inconclusive": "otherwise, or there are fewer than 2 seeds or 3 batch sizes",
    },
    "degradation_above_b_crit": {
        "symbol": "change above B_crit =",
        "what": "relative change of the final metric from the smallest batch size (positive = worse), paired by seed, "
        "averaged over the batch sizes above the study's fitted B_crit (estimate, interval) and over those above the "
        "smallest and at or below B_crit (detail), against the claim's tolerance τ; each draw refits B_crit to the "
        "steps to target of the same resampled seeds, so B_crit's uncertainty is carried into the interval",
        "replicated": "the change at or below B_crit stays within τ and the change above B_crit exceeds τ",
        "not replicated": "the change at or below B_crit exceeds τ, or the change above B_crit stays within τ",
        "inconclusive": "otherwise, or no batch size lies between the smallest and B_crit, or none above it, "
        "or B_crit is not a measurement (flagged: outside the batch sizes that reached the target, fewer than 4 of "
        "them, or a poor fit), or it is flagged in more than (1 − L)/2 of the draws (then no interval holds)",
    },
    "noise_scale_ratio": {
        "symbol": "B_simple / B_crit =",
        "what": "B_simple at the target divided by the fitted B_crit (McCandlish et al. 2018 predict B_crit ≈ B_noise, "
        "of which B_simple is the Hessian-free form); B_simple at the target is the geometric mean over the measured "
        "runs of B_simple at each run's checkpoint closest (in log step) to its crossing of the target; both come "
        "from the same resampled seeds in every draw",
        "replicated": "the interval of the ratio lies wholly within a factor f of 1 ([1/f, f])",
        "not replicated": "the interval lies wholly outside [1/f, f]",
        "inconclusive": "the interval overlaps an edge of [1/f, f], or B_crit is flagged (or flagged in more than "
        "(1 − L)/2 of the draws: then no interval holds), or fewer than 2 seeds have gradient statistics at the target",
    },
    "spread_slope": {
        "symbol": "slope =",
        "what": "slope of log gradient spread on log batch size over the trained runs, each measured at its own batch "
        "size (minibatches drawn with replacement from the training split) at its last checkpoint, on seed means of "
        "log spread per batch size; a spread that follows B^-1/2 (one model's sampling noise) has slope −1/2",
        "replicated": "the interval of the slope lies wholly above −1/2 + τ: the spread falls more slowly than "
        "B^-1/2, it flattens",
        "not replicated": "the interval lies wholly at or below −1/2 + τ: the spread follows B^-1/2 or falls faster",
        "inconclusive": "the interval contains −1/2 + τ, or fewer than 3 batch sizes or 2 seeds were measured",
    },
    "log_slope_data": {
        "symbol": "slope on data =",
        "what": "slope of log B_crit on log training-set size, least squares over the scaling grid's cells with log "
        "width as a second regressor; B_crit of each cell from the S(B) fit on seed means",
        "replicated": "the interval of the slope lies wholly above 0",
        "not replicated": "the interval lies wholly below 0",
        "inconclusive": "the interval contains 0, or some cell's B_crit is flagged (or some cell is flagged in more than "
        "(1 − L)/2 of the draws: then no interval holds)",
    },
    "log_slope_width": {
        "symbol": "slope on width =",
        "what": "slope of log B_crit on log model width, least squares over the scaling grid's cells with log "
        "training-set size as a second regressor",
        "replicated": "the interval of the slope lies wholly within ±τ (a width doubled changes B_crit by at most 2^τ)",
        "not replicated": "the interval lies wholly outside ±τ",
        "inconclusive": "the interval overlaps ±τ's edge, or some cell's B_crit is flagged (or some cell is flagged "
        "in more than (1 − L)/2 of the draws: then no interval holds)",
    },
}
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
        "detail": describe_interval(draws, rho, low, high, n_units, level, unit),
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
        f"over batch size {point['over_batch']:+.3f} [{o_b[0]:+.3f}, {o_b[1]:+.3f}]"
        + _clause(describe_interval([d[weaker] for d in draws], point[weaker], *intervals[weaker], n_units, level)),
        "verdict": verdict,
    }


def b_crit_of_seeds(steps: pd.DataFrame):
    """A function of seed labels giving B_crit fitted to those seeds' steps to target, and its flag ('' = measured)."""
    sizes, seeds, grid = steps_matrix(steps)
    position = {s: i for i, s in enumerate(seeds)}

    def fit(labels) -> tuple[float, str]:
        missing = sorted({int(s) for s in labels if s not in position})
        if missing:
            raise ValueError(f"seeds {missing} have no steps to target")
        return measured_b_crit(sizes, seed_mean_steps(grid, np.array([position[s] for s in labels], dtype=int)))

    return fit


def _given_b_crit(value: float):
    """A fixed B_crit as a function of seed labels (flagged only when it is not a number)."""
    reason = "" if math.isfinite(value) else measured_flag("b_crit", value, [], math.nan)
    return lambda labels: (value, reason)


def _interval(low: float, high: float, spec: str) -> str:
    """'[low, high]' in a detail, or '(no interval)' where the draws give none."""
    return f"[{low:{spec}}, {high:{spec}}]" if math.isfinite(low) and math.isfinite(high) else "(no interval)"


def _clause(text: str) -> str:
    """A further clause of a detail ('' stays '')."""
    return f"; {text}" if text else ""


def _measured_share(values) -> float:
    """Fraction of the bootstrap draws whose B_crit the rule counts as measured."""
    values = np.asarray(values, dtype=float)
    return float(np.isfinite(values).mean()) if len(values) else 0.0


def degradation_test(
    table: pd.DataFrame, metric: str, b_crit, tolerance: float, n_boot: int = 2000, level: float = 0.95
) -> dict:
    """Relative change from the smallest batch size below and above B_crit (linear scaling's promise).

    b_crit: a number, or a function of seed labels returning (B_crit, flag) (b_crit_of_seeds), refitted in
    every draw from the resampled seeds so that B_crit's own uncertainty enters the intervals.
    """
    b_crit_of = b_crit if callable(b_crit) else _given_b_crit(float(b_crit))
    sign = -1.0 if any(key in metric for key in HIGHER_IS_BETTER) else 1.0
    finite = table[np.isfinite(table[metric].astype(float))]
    grid = finite.pivot_table(index="batch_size", columns="seed", values=metric, aggfunc="mean").sort_index()
    sizes, values, seeds = grid.index.to_numpy(dtype=float), grid.to_numpy(dtype=float), grid.columns.to_numpy()
    n_units = values.shape[1]
    change = sign * (values - values[:1]) / np.abs(values[:1]) if len(values) else values

    def split(value: float) -> tuple[np.ndarray, np.ndarray]:
        return (sizes > sizes.min()) & (sizes <= value), sizes > value

    def group_means(cols: np.ndarray) -> tuple[float, float, float]:
        value, reason = b_crit_of(seeds[cols])
        if reason:
            return math.nan, math.nan, math.nan
        below, above = split(value)
        per_size = np.nanmean(change[:, cols], axis=1)
        return (float(np.nanmean(per_size[below])) if below.any() else math.nan,
                float(np.nanmean(per_size[above])) if above.any() else math.nan, value)

    b_crit_point, reason = b_crit_of(seeds) if n_units else (math.nan, "no runs")
    below, above = split(b_crit_point) if not reason else (sizes < 0, sizes < 0)
    point, draws = seed_bootstrap(group_means, n_units, n_boot)
    below_est, above_est, _ = point or (math.nan, math.nan, math.nan)
    b_low, b_high = percentile_interval([d[0] for d in draws], level)
    a_low, a_high = percentile_interval([d[1] for d in draws], level)
    c_low, c_high = percentile_interval([d[2] for d in draws], level)
    share = _measured_share([d[2] for d in draws])
    if reason or not (below.any() and above.any() and n_units >= 2) or not enough_draws(share, level):
        verdict = "inconclusive"
    elif b_high <= tolerance and a_low > tolerance:
        verdict = "replicated"
    elif b_low > tolerance or a_high <= tolerance:
        verdict = "not replicated"
    else:
        verdict = "inconclusive"
    if reason:
        detail = f"B_crit is not a measurement: {reason}"
    else:
        detail = (
            f"B_crit {b_crit_point:.3g} {_interval(c_low, c_high, '.3g')}, measured in {share:.0%} of the resamples; "
            f"change at or below it {below_est:+.3f} {_interval(b_low, b_high, '+.3f')} ({int(below.sum())} batch sizes), "
            f"above it {above_est:+.3f} ({int(above.sum())})"
            + _clause(describe_interval([d[1] for d in draws], above_est, a_low, a_high, n_units, level))
        )
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
        "detail": f"{detail}; tolerance {tolerance:g}",
        "note": "B_crit not measured" if reason else no_interval_note(above_est, a_low, a_high, 1 - share, level),
        "verdict": verdict,
    }


def noise_scale_test(noise: pd.DataFrame, steps: pd.DataFrame, factor: float, n_boot: int = 2000, level: float = 0.95) -> dict:
    """B_simple at the target over B_crit, with a seed-bootstrap interval: does the noise scale predict B_crit?

    Both come from the same resampled seeds in every draw. Seeds without gradient statistics count for
    B_crit only; a draw with none of the measured seeds has no ratio (left out). A draw with a flagged
    B_crit has a ratio of unknown value, which counts against the interval's tails (at most (1 - level)/2).
    """
    at = noise_at_crossing(noise, steps)
    b_crit_of = b_crit_of_seeds(steps)
    seeds = steps_matrix(steps)[1]
    by_seed = {s: at.loc[at["seed"] == s, "b_simple"].to_numpy(dtype=float) for s in seeds}
    measured_seeds = [s for s in seeds if np.isfinite(by_seed[s]).any()]

    def ratio(cols: np.ndarray) -> tuple[float, float, float]:
        labels = seeds[cols]
        value, reason = b_crit_of(labels)
        b_simple = geometric_mean(np.concatenate([by_seed[s] for s in labels]))
        value = math.nan if reason else value
        return b_simple / value, b_simple, value

    b_crit_point, reason = b_crit_of(seeds)
    point, draws = seed_bootstrap(ratio, len(seeds), n_boot)
    estimate, b_simple, _ = point or (math.nan, math.nan, math.nan)
    ratios = [d[0] for d in draws]
    # a draw with B_simple but a flagged B_crit has a ratio, unknown; one without a measured seed has none
    unknown = [math.isfinite(d[1]) and not math.isfinite(d[2]) for d in draws]
    low, high = percentile_interval(ratios, level, unknown)
    s_low, s_high = percentile_interval([d[1] for d in draws], level, [False] * len(draws))
    c_low, c_high = percentile_interval([d[2] for d in draws], level)
    share = _measured_share([d[2] for d in draws])
    if reason or len(measured_seeds) < 2 or not enough_draws(share, level):
        verdict = "inconclusive"
    else:
        verdict = interval_verdict(low, high, (1 / factor, factor))
    factor_off = geometric_mean(at["step_factor"])
    used = ", ".join(f"{f:.0%}: {n}" for f, n in at["fraction"].value_counts().sort_index().items())
    b_crit_text = (
        f"B_crit is not a measurement: {reason}" if reason
        else f"B_crit {b_crit_point:.3g} {_interval(c_low, c_high, '.3g')}, measured in {share:.0%} of the resamples"
    )
    return {
        "statistic": "noise_scale_ratio",
        "estimate": estimate,
        "low": low,
        "high": high,
        "n_x": int(at["batch_size"].nunique()),
        "n_units": len(measured_seeds),
        "note": "B_crit not measured" if reason else "fewer than 2 seeds measured" if len(measured_seeds) < 2
        else no_interval_note(estimate, low, high, 1 - share, level),
        "n_excluded_runs": int(at["b_simple"].isna().sum()),
        "at_smallest": math.nan,
        "at_largest": math.nan,
        "detail": f"B_simple at the target {b_simple:.3g} {_interval(s_low, s_high, '.3g')} over {len(at)} runs of "
        f"{len(measured_seeds)} seeds (checkpoints used, by fraction of training: {used or 'none'}; on average "
        f"{factor_off:.2g}x from the crossing in steps); {b_crit_text}; factor {factor:g}"
        + _clause(describe_interval(ratios, estimate, low, high, len(seeds), level, unknown=unknown)),
        "verdict": verdict,
    }


def own_spread(spread: pd.DataFrame) -> pd.DataFrame:
    """Each measured run's gradient spread at its own batch size at its last checkpoint (log taken where positive)."""
    if "probe" not in spread:
        return spread.iloc[:0].assign(log_spread=[])
    own = spread[spread["probe"] == "own"]
    final = own[own["fraction"] == own.groupby(["batch_size", "seed"])["fraction"].transform("max")]
    values = final["spread"].to_numpy(dtype=float)
    return final.assign(log_spread=np.log(np.where(values > 0, values, np.nan)))


def spread_slope_test(spread: pd.DataFrame, tolerance: float, n_boot: int = 2000, level: float = 0.95) -> dict:
    """Slope of log spread on log batch size across trained runs, each at its own batch size, against -1/2 + tolerance."""
    own = own_spread(spread)
    finite = own[np.isfinite(own["log_spread"])]
    grid = finite.pivot_table(index="batch_size", columns="seed", values="log_spread", aggfunc="mean").sort_index()
    sizes, values = grid.index.to_numpy(dtype=float), grid.to_numpy(dtype=float)
    n_units = values.shape[1]

    def slope(cols: np.ndarray) -> float:
        means = np.nanmean(values[:, cols], axis=1)
        ok = np.isfinite(means)
        return float(np.polyfit(np.log(sizes[ok]), means[ok], 1)[0]) if ok.sum() >= 3 else math.nan

    point, draws = seed_bootstrap(slope, n_units, n_boot)
    point = math.nan if point is None else point
    low, high = percentile_interval(draws, level)
    threshold = -0.5 + tolerance
    enough = len(sizes) >= 3 and n_units >= 2 and math.isfinite(point)
    verdict = interval_verdict(low - threshold, high - threshold) if enough else "inconclusive"
    means = np.nanmean(values, axis=1) if len(values) else values
    ratio = float(np.exp(means[-1] - means[0]) * math.sqrt(sizes[-1] / sizes[0])) if len(sizes) >= 2 else math.nan
    return {
        "statistic": "spread_slope",
        "estimate": point,
        "low": low,
        "high": high,
        "n_x": int(len(sizes)),
        "n_units": int(n_units),
        "n_excluded_runs": int(len(own) - len(finite)),
        "at_smallest": float(np.exp(means[0])) if len(sizes) else math.nan,
        "at_largest": float(np.exp(means[-1])) if len(sizes) else math.nan,
        "detail": f"spread at the largest batch size {ratio:.3g}x the B^-1/2 line through the smallest; "
        f"the claim needs the slope above {threshold:g} (−1/2 + τ, τ = {tolerance:g})"
        + _clause(describe_interval(draws, point, low, high, n_units, level)),
        "verdict": verdict,
    }


SCORECARD_COLUMNS = [
    "claim", "source", "metric", "expect", "statistic", "symbol", "estimate", "low", "high", "level", "n_boot",
    "n_x", "n_units", "n_excluded_runs", "at_smallest", "at_largest", "detail", "note", "verdict", "rule",
]


def scorecard_row(claim, result: dict, level: float, n_boot: int) -> dict:
    """One scorecard row: the claim, its test's numbers, the verdict and the rule that gave it."""
    row = {"claim": claim.id, "source": claim.source, "metric": claim.metric, "expect": claim.expect,
           "level": level, "n_boot": n_boot, "detail": "", "note": "", **result}
    row["rule"] = STATISTICS[row["statistic"]][row["verdict"]]
    row["symbol"] = STATISTICS[row["statistic"]]["symbol"]
    return {k: row.get(k) for k in SCORECARD_COLUMNS}


def evaluate_claims(
    claims,
    table: pd.DataFrame,
    spread: pd.DataFrame | None = None,
    n_boot: int = 2000,
    curves: pd.DataFrame | None = None,
    steps: pd.DataFrame | None = None,
    noise: pd.DataFrame | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """One scorecard row per per-study claim (claims across a scaling grid are evaluated in batchlab.analysis.scaling).

    steps: the per-run steps to target (claims on B_crit); noise: the gradient statistics (the noise-scale claim).
    """
    rows = []
    for claim in claims:
        if claim.expect in ("holds_until_critical_batch", "predicts_critical_batch") and (steps is None or steps.empty):
            raise ValueError(f"claim {claim.id!r}: no steps to target")
        if claim.expect == "predicted_by_samples_seen":
            if curves is None or curves.empty:
                raise ValueError(f"claim {claim.id!r}: no loss curves")
            result = samples_predict_test(curves, claim.metric, n_boot, level)
        elif claim.expect == "holds_until_critical_batch":
            if claim.metric not in table:
                raise ValueError(f"claim {claim.id!r}: metric {claim.metric!r} is not a column of the run table")
            b_crit = b_crit_of_seeds(steps)
            result = degradation_test(table, claim.metric, b_crit, claim.tolerance_or_default(), n_boot, level)
        elif claim.expect == "predicts_critical_batch":
            if noise is None or noise.empty:
                raise ValueError(f"claim {claim.id!r}: no gradient statistics measured")
            result = noise_scale_test(noise, steps, claim.tolerance_or_default(), n_boot, level)
        elif claim.metric == "gradient_spread":
            own = own_spread(spread) if spread is not None else pd.DataFrame()
            if own.empty:
                raise ValueError(f"claim {claim.id!r}: no gradient spread measured at the runs' own batch sizes")
            if claim.expect == "flattens_with_batch_size":
                result = spread_slope_test(spread, claim.tolerance_or_default(), n_boot, level)
            else:
                result = trend_test(own, "batch_size", "spread", claim.expect, n_boot, level)
        elif claim.metric == "critical_batch_size":
            continue
        else:
            if claim.metric not in table:
                raise ValueError(f"claim {claim.id!r}: metric {claim.metric!r} is not a column of the run table")
            result = trend_test(table, "batch_size", claim.metric, claim.expect, n_boot, level)
        rows.append(scorecard_row(claim, result, level, n_boot))
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)
