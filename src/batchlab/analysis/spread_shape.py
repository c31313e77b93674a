"""Shape test for "gradient spread falls as B^-1/2, then flattens" (Vaessen & van Leeuwen 2024): a knee, not one slope.

One slope of log spread on log B against -1/2 (the test this one replaced) cannot see a knee: a curve that
falls at -0.65 and then stays level reads "not replicated", and one that rises and then falls reads
"flattens". Here the units are batch sizes: the seed means of log spread (natural log) per batch size are
fitted by a continuous broken stick in log-log (two lines joined at a knee, the knee searched over the
interior batch sizes and the midpoints between neighbouring ones), and the claim is tested on its shape.

T = slope_after - slope_before (slopes are d log spread / d log B). With alpha (default 0.05) and
m = min_effect (default 0.25), and the (1 - 2 alpha) parametric bootstrap intervals of the broken-stick fit:
- "not replicated" if the spread rises: the lower end of the interval of the single-line slope, or of
  slope_before, lies above 0 (this rule is checked first);
- "replicated" (falls, then level) if the upper end of the interval of slope_before lies below 0,
  T exceeds what a straight power law gives (p <= alpha, simulated), T >= m and |slope_after| <= m;
- "not replicated" if the interval of T lies within (-m, m) (two one-sided tests at alpha: a straight
  power law, up to m);
- "inconclusive" otherwise, or with fewer than 4 batch sizes, or no estimate of the noise.
A knee's likelihood ratio has no standard null, so both sides are calibrated by simulation
(benchmarks/spread_shape_calibration.py gives the error rates).
"""

from __future__ import annotations

import math

import numpy as np

MIN_SIZES = 4
RULE = {
    "replicated": "the spread falls before the knee (interval of slope_before below 0), then levels off: T = "
    "slope_after − slope_before exceeds a straight power law's (simulated p ≤ α), T ≥ m and |slope_after| ≤ m",
    "not replicated": "the spread rises (interval of the single-line slope or of slope_before above 0), or the "
    "interval of T lies within ±m (a straight power law, up to m)",
    "inconclusive": "otherwise, or fewer than 4 batch sizes have a finite spread, or the noise cannot be estimated",
}


def _candidates(log2_sizes: np.ndarray) -> np.ndarray:
    inner = log2_sizes[1:-1]
    return np.sort(np.concatenate([inner, (inner[:-1] + inner[1:]) / 2]))


class _BrokenStick:
    """Least-squares broken-stick and single-line fits of many columns at once, on one set of batch sizes."""

    def __init__(self, log2_sizes: np.ndarray):
        self.x = log2_sizes * math.log(2.0)
        self.knees = _candidates(log2_sizes) * math.log(2.0)
        designs = [np.column_stack([np.ones_like(self.x), np.minimum(self.x - k, 0), np.maximum(self.x - k, 0)])
                   for k in self.knees]
        self.designs = np.stack(designs)
        self.pinvs = np.stack([np.linalg.pinv(d) for d in designs])
        self.bases = np.stack([np.linalg.qr(d)[0] for d in designs]).transpose(0, 2, 1)
        self.line = np.column_stack([np.ones_like(self.x), self.x])
        self.line_pinv = np.linalg.pinv(self.line)

    def fit(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """y: [n_sizes, n_columns]; per column the best knee's coefficients, fitted values and rss, and the line's."""
        centred = y - y.mean(axis=0)
        rss_all = (centred**2).sum(axis=0) - ((self.bases @ centred) ** 2).sum(axis=1)
        best = np.argmin(rss_all, axis=0)
        cols = np.arange(y.shape[1])
        coef = (self.pinvs @ y)[best, :, cols]
        fitted = np.einsum("mnp,mp->nm", self.designs[best], coef)
        rss = ((y - fitted) ** 2).sum(axis=0)
        line_coef = self.line_pinv @ y
        line_fitted = self.line @ line_coef
        return {
            "knee": self.knees[best],
            "level": coef[:, 0],
            "slope_before": coef[:, 1],
            "slope_after": coef[:, 2],
            "rss": rss,
            "fitted": fitted,
            "line_intercept": line_coef[0],
            "line_slope": line_coef[1],
            "line_rss": ((y - line_fitted) ** 2).sum(axis=0),
            "line_fitted": line_fitted,
        }


def _sorted_sizes(log2_sizes) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(log2_sizes, dtype=float)
    order = np.argsort(x, kind="stable")
    if len(x) < MIN_SIZES:
        raise ValueError(f"a broken stick needs at least {MIN_SIZES} batch sizes, got {len(x)}")
    if not np.all(np.isfinite(x)) or np.any(np.diff(x[order]) == 0):
        raise ValueError("batch sizes must be finite and distinct")
    return x[order], order


def knee_fit(log2_sizes, log_spread) -> dict[str, float]:
    """Continuous broken-stick least-squares fit of log spread on log batch size, and the single-line fit.

    log2_sizes: log2 of the batch sizes; log_spread: natural log of the spread, one value per size (finite).
    The knee is searched over the interior batch sizes and the midpoints (in log B) between neighbouring
    interior ones, so each segment holds at least two batch sizes; ties go to the smallest knee. Slopes are
    d log spread / d log B; knee is a batch size; level is the fitted log spread at the knee.
    """
    x, order = _sorted_sizes(log2_sizes)
    y = np.asarray(log_spread, dtype=float)[order]
    if not np.all(np.isfinite(y)):
        raise ValueError("log spread must be finite")
    fit = _BrokenStick(x).fit(y[:, None])
    knee_log2 = float(fit["knee"][0] / math.log(2.0))
    return {
        "knee": float(2.0**knee_log2),
        "knee_log2": knee_log2,
        "level": float(fit["level"][0]),
        "slope_before": float(fit["slope_before"][0]),
        "slope_after": float(fit["slope_after"][0]),
        "rss": float(fit["rss"][0]),
        "line_slope": float(fit["line_slope"][0]),
        "line_intercept": float(fit["line_intercept"][0]),
        "line_rss": float(fit["line_rss"][0]),
        "n": int(len(x)),
    }


def _run_sd(values: np.ndarray, means: np.ndarray, counts: np.ndarray, residuals: np.ndarray) -> tuple[float, str, int]:
    """SD of one run's log spread: the larger of the pooled seed-to-seed SD and the one the broken stick's residuals
    imply, with the name and the degrees of freedom of the one taken.

    The residual estimate (seed means weighted by their seed counts, n - 4 degrees of freedom: three
    coefficients and the knee) also carries variation shared by the seeds of a batch size, which
    seed-to-seed spread alone would miss; taking the larger keeps the test from trusting too little noise.
    """
    within_df = int((counts - 1).clip(min=0).sum())
    within = math.sqrt(np.nansum((values - means[:, None]) ** 2) / within_df) if within_df else math.nan
    resid_df = len(means) - 4
    resid = math.sqrt(float((counts * residuals**2).sum()) / resid_df) if resid_df > 0 else math.nan
    found = [(v, name, df) for v, name, df in ((within, "seed-to-seed", within_df), (resid, "residuals", resid_df))
             if math.isfinite(v)]
    return max(found) if found else (math.nan, "none", 0)


def _sd_draws(run_sd: float, df: int, n_sim: int, rng: np.random.Generator) -> np.ndarray:
    """One noise SD per simulated table, drawn as the estimate's own uncertainty allows: run_sd * sqrt(df / chi2_df).

    With few degrees of freedom (one seed and five batch sizes leave one) a single estimate is often far too small,
    and simulating with it alone would make a chance knee look significant; each simulated T then has the spread a
    t-statistic has, and the test keeps its level. With many it is nearly run_sd every time.
    """
    return run_sd * np.sqrt(df / rng.chisquare(df, n_sim))


def _result(**fields) -> dict:
    base = {
        "statistic": "spread_knee", "estimate": math.nan, "low": math.nan, "high": math.nan, "p_value": math.nan,
        "knee": math.nan, "slope_before": math.nan, "slope_after": math.nan, "line_slope": math.nan,
        "run_sd": math.nan, "level": math.nan, "n_sim": 0, "n_x": 0, "n_units": 0, "n_seeds": 0,
        "at_smallest": math.nan, "at_largest": math.nan, "verdict": "inconclusive", "detail": "",
    }
    return {**base, **fields}


def flattening_test(sizes, log_spread_by_seed, min_effect: float = 0.25, alpha: float = 0.05, n_sim: int = 2000,
                    seed: int = 0) -> dict:
    """Does log spread fall with log batch size, then level off (a knee), or follow one power law, or rise?

    sizes: [n_sizes] batch sizes; log_spread_by_seed: [n_sizes, n_seeds] natural log of the spread, NaN where
    a run was not measured. The units are batch sizes (the seed means of each); the verdict follows the
    module's rule. p_value is the claimed side's: the share of n_sim straight power laws (the single line
    fitted to the data, Gaussian noise of the run SD over the same seed counts, that SD drawn per table from its
    estimate's sampling distribution) whose T reaches the observed T. low/high: the (1 - 2 alpha) percentile
    interval of T from n_sim parametric bootstrap tables drawn from the broken-stick fit with the same noise.
    Deterministic given seed (numpy PCG64).
    """
    sizes = np.asarray(sizes, dtype=float)
    values = np.asarray(log_spread_by_seed, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[0] != len(sizes):
        raise ValueError(f"{len(sizes)} batch sizes but {values.shape[0]} rows of log spread")
    values = np.where(np.isfinite(values), values, np.nan)
    counts = np.isfinite(values).sum(axis=1)
    keep = (counts > 0) & np.isfinite(sizes) & (sizes > 0)
    order = np.argsort(sizes[keep], kind="stable")
    sizes, values, counts = sizes[keep][order], values[keep][order], counts[keep][order]
    n_x, n_seeds = len(sizes), int(np.isfinite(values).any(axis=0).sum())
    level = 1 - 2 * alpha
    if n_x < MIN_SIZES:
        return _result(n_x=n_x, n_units=n_x, n_seeds=n_seeds, level=level,
                       detail=f"only {n_x} batch sizes have a finite spread; a knee needs at least {MIN_SIZES}")
    means = np.nanmean(values, axis=1)
    model = _BrokenStick(np.log2(sizes))
    fit = {k: v[0] if v.ndim == 1 else v[:, 0] for k, v in model.fit(means[:, None]).items()}
    t_obs = float(fit["slope_after"] - fit["slope_before"])
    run_sd, source, sd_df = _run_sd(values, means, counts, means - fit["fitted"])
    common = dict(
        estimate=t_obs, knee=float(np.exp(fit["knee"])), slope_before=float(fit["slope_before"]),
        slope_after=float(fit["slope_after"]), line_slope=float(fit["line_slope"]), run_sd=run_sd, level=level,
        n_x=n_x, n_units=n_x, n_seeds=n_seeds, at_smallest=float(np.exp(means[0])), at_largest=float(np.exp(means[-1])),
    )
    if not math.isfinite(run_sd):
        return _result(**common, detail=f"no estimate of the noise: one seed and {n_x} batch sizes leave no "
                       "degrees of freedom beyond the broken stick's four")
    rng = np.random.Generator(np.random.PCG64(seed))
    per_seed = (1 / np.sqrt(counts))[:, None]
    null = model.fit(fit["line_fitted"][:, None]
                     + per_seed * _sd_draws(run_sd, sd_df, n_sim, rng) * rng.standard_normal((n_x, n_sim)))
    boot = model.fit(fit["fitted"][:, None] + per_seed * _sd_draws(run_sd, sd_df, n_sim, rng) * rng.standard_normal((n_x, n_sim)))
    t_null = null["slope_after"] - null["slope_before"]
    p = float((1 + np.count_nonzero(t_null >= t_obs - 1e-12 * max(1.0, abs(t_obs)))) / (1 + n_sim))

    def interval(draws: np.ndarray) -> tuple[float, float]:
        low, high = np.quantile(draws, [alpha, 1 - alpha])
        return float(low), float(high)

    low, high = interval(boot["slope_after"] - boot["slope_before"])
    before_low, before_high = interval(boot["slope_before"])
    line_low, line_high = interval(boot["line_slope"])
    m = min_effect
    rises = line_low > 0 or before_low > 0
    falls_then_level = before_high < 0 and p <= alpha and t_obs >= m and abs(common["slope_after"]) <= m
    straight = -m < low and high < m
    if rises:
        verdict, why = "not replicated", "the spread rises" + ("" if line_low > 0 else " up to the knee")
    elif falls_then_level:
        verdict, why = "replicated", "the spread falls, then levels off"
    elif straight:
        verdict, why = "not replicated", f"T lies within ±{m:g}: one power law"
    else:
        verdict, why = "inconclusive", "neither a knee nor one power law is shown"
    pct = f"{100 * level:g}%"
    detail = (
        f"{why}: knee at B ≈ {common['knee']:.4g}, slope {common['slope_before']:.3g} before "
        f"[{before_low:.3g}, {before_high:.3g}] and {common['slope_after']:.3g} after, T = {t_obs:.3g} "
        f"[{low:.3g}, {high:.3g}] ({pct} parametric bootstrap); a straight power law (slope {common['line_slope']:.3g} "
        f"[{line_low:.3g}, {line_high:.3g}]) reaches T in p = {p:.3g} of {n_sim} simulations; run SD {run_sd:.3g} "
        f"({source}, {sd_df} degrees of freedom, its uncertainty simulated too); {n_x} batch sizes, {n_seeds} seeds; "
        f"m = {m:g}, α = {alpha:g}"
    )
    return _result(**common, low=low, high=high, p_value=p, n_sim=int(n_sim), verdict=verdict, detail=detail,
                   before_low=before_low, before_high=before_high, line_low=line_low, line_high=line_high)
