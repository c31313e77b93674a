"""The scorecard's claims that rest on the fitted B_crit, resampled over seeds and batch sizes alike.

"The same budget reaches the same metric up to B_crit, not beyond" (degradation_test) and "the gradient noise scale
predicts B_crit" (noise_scale_test). A seed draw alone keeps each batch size's shared effect fixed, so both draw
batch sizes too: Owen's pigeonhole bootstrap within the regimes, and B_crit from a wild residual bootstrap of the
S(B) fit crossed with the seed draw (SeedFit). Verdicts need at least MIN_SEEDS_FOR_INTERVAL seeds; their error rates
are measured in docs/seed_rule_calibration.md.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from batchlab.analysis.at_target import (
    crossed_estimator_variance, estimator_text, geometric_mean, noise_at_crossing, with_estimator_noise,
)
from batchlab.analysis.cbs import fit_steps_model, seed_mean_steps, steps_matrix
from batchlab.analysis.measured import flag as measured_flag
from batchlab.analysis.measured import measured_b_crit
from batchlab.analysis.resampling import (
    counts, crossed_mean, describe_interval, enough_draws, leverage, no_interval_note, percentile_interval, pigeonhole_draws,
    rademacher, seed_draws, small_sample_spread, wild_log_steps,
)
from batchlab.analysis.significance import interval_verdict
from batchlab.analysis.trend import HIGHER_IS_BETTER


def profile_b_crit(sizes: np.ndarray, log_steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """B_crit and the RMS log residual of S(B) = S_min (1 + B_crit/B) fitted to many rows of log steps at once.

    The objective of batchlab.analysis.cbs.fit_steps_model (least squares in log), with log S_min profiled out
    and log B_crit found on a grid reaching 4 e-folds beyond the batch sizes, then refined by golden section:
    thousands of bootstrap fits in the time of a few. NaN steps are left out; a row with fewer than 3 batch
    sizes gives NaN.
    """
    sizes = np.asarray(sizes, dtype=float)
    y = np.atleast_2d(np.asarray(log_steps, dtype=float))
    ok = np.isfinite(y)
    y0, n_ok = np.where(ok, y, 0.0), ok.sum(axis=1)

    def rss(u: np.ndarray) -> np.ndarray:
        r = np.where(ok, y0 - np.log1p(np.exp(u)[:, None] / sizes), 0.0)
        centred = np.where(ok, r - r.sum(axis=1, keepdims=True) / np.maximum(n_ok, 1)[:, None], 0.0)
        return (centred**2).sum(axis=1)

    grid = np.arange(math.log(sizes.min()) - 4, math.log(sizes.max()) + 4 + 1e-9, 0.1)
    values = np.stack([rss(np.full(len(y), u)) for u in grid], axis=1)
    best = values.argmin(axis=1)
    low, high = grid[np.maximum(best - 1, 0)], grid[np.minimum(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        left = rss(a) <= rss(b)
        high, low = np.where(left, b, high), np.where(left, low, a)
    u = (low + high) / 2
    enough = np.array([len(np.unique(sizes[row])) >= 3 for row in ok])
    rmse = np.sqrt(rss(u) / np.maximum(n_ok, 1))
    return np.where(enough, np.exp(u), np.nan), np.where(enough, rmse, np.nan)


class SeedFit:
    """B_crit fitted by the measured rule to the steps to target of chosen seeds (`fit(labels)` gives (B_crit, flag),
    flag '' when measured), and its bootstrap draws (`draws`): a seed draw crossed with a wild bootstrap of the fit's
    residuals over batch sizes, so that a batch size's effect on the steps moves B_crit in the draws as in the data."""

    def __init__(self, steps: pd.DataFrame):
        self.sizes, self.seeds, self.grid = steps_matrix(steps)
        self.position = {s: i for i, s in enumerate(self.seeds)}
        means = seed_mean_steps(self.grid, np.arange(len(self.seeds)))
        self.residuals = self.leverages = np.full(len(self.sizes), np.nan)
        try:
            fit = fit_steps_model(self.sizes, means)
        except ValueError:
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            self.residuals = np.log(means) - np.log(fit.steps(self.sizes))
        # d log S / d (log S_min, log B_crit) at the fit, at the batch sizes it used
        share = (fit.b_crit / self.sizes) / (1 + fit.b_crit / self.sizes)
        used = np.isfinite(self.residuals)
        self.leverages = leverage(np.where(used[:, None], np.column_stack([np.ones_like(share), share]), np.nan))

    def columns(self, labels) -> np.ndarray:
        """The steps' seed columns of seed labels (an error for a seed without steps to target)."""
        labels = np.asarray(labels)
        missing = sorted({int(s) for s in labels.ravel() if s not in self.position})
        if missing:
            raise ValueError(f"seeds {missing} have no steps to target")
        return np.vectorize(self.position.__getitem__, otypes=[int])(labels) if labels.size else labels.astype(int)

    def __call__(self, labels) -> tuple[float, str]:
        return measured_b_crit(self.sizes, seed_mean_steps(self.grid, self.columns(labels)))

    def draws(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """B_crit in each row of drawn seed labels ([n_boot, k]) with the residuals' signs drawn from rng; NaN where
        the measured rule flags the draw's B_crit (outside the batch sizes reached, too few of them, or not spanning
        both regimes; the fit's RMS residual is judged on the data only, since a draw's residuals are widened)."""
        return self.fitted_draws(labels, rng)[1]

    def fitted_draws(self, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The draws of `draws` twice: every draw's fitted B_crit (NaN only where no fit exists), and the same with
        NaN where the measured rule flags it."""
        cols = self.columns(labels)
        sub = self.grid[:, cols]  # [batch size, draw, seed]
        hit = np.isfinite(sub)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (np.where(hit, sub, 0.0).sum(axis=2) / hit.sum(axis=2)).T
            log_drawn = np.log(np.where(means > 0, means, np.nan))
        signs = rademacher(len(cols), len(self.sizes), rng)
        b_crit, _ = profile_b_crit(self.sizes, wild_log_steps(log_drawn, self.residuals, signs, self.leverages))
        reached = np.isfinite(log_drawn)
        # the rule's limit on the fit's residual is judged once, on the data: a draw's residuals are widened by design
        return b_crit, np.array([b if not measured_flag("b_crit", b, self.sizes[r], math.nan) else math.nan
                                 for b, r in zip(b_crit, reached)])


def b_crit_of_seeds(steps: pd.DataFrame) -> SeedFit:
    """B_crit as a function of seed labels, fitted to those seeds' steps to target, with its bootstrap draws."""
    return SeedFit(steps)


class _GivenBCrit:
    """A fixed B_crit in SeedFit's shape (flagged only when it is not a number): the same in every draw."""

    def __init__(self, value: float):
        self.value = value
        self.reason = "" if math.isfinite(value) else measured_flag("b_crit", value, [], math.nan)

    def __call__(self, labels) -> tuple[float, str]:
        return self.value, self.reason

    def draws(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.full(len(labels), math.nan if self.reason else self.value)


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


MIN_PER_PART = 2  # batch sizes each part of the linear-scaling claim needs: a part of one has no spread to draw


def regime_parts(sizes: np.ndarray, b_crit) -> np.ndarray:
    """Each batch size's part for the linear-scaling claim, per B_crit (broadcast): 0 the lower half of the regime
    (B at most the geometric midpoint sqrt(B_min B_crit) of the batch sizes up to B_crit), 1 its upper half (up to
    B_crit), 2 above B_crit. A NaN B_crit puts every batch size in part 0."""
    b_crit = np.asarray(b_crit, dtype=float)[..., None]
    with np.errstate(invalid="ignore"):
        midpoint = np.sqrt(np.min(sizes, initial=np.inf) * b_crit)  # no sizes (no finite run): no parts
        return (sizes > midpoint).astype(int) + (sizes > b_crit).astype(int)


def regime_changes(values: np.ndarray, parts: np.ndarray, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of per-batch-size values ([n, sizes]) and their parts: the relative change of the regime's upper half
    from its lower half, and of the batch sizes above B_crit from the whole regime (the reference), both divided
    by the reference; sign -1 for a higher-is-better metric, so that positive is worse."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high, above, ref = (np.nanmean(np.where(mask, values, np.nan), axis=1)
                                 for mask in (parts == 0, parts == 1, parts == 2, parts <= 1))
    return sign * (high - low) / np.abs(ref), sign * (above - ref) / np.abs(ref)


def _spread_within_parts(means: np.ndarray, full: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Each draw's per-batch-size means with every batch size's all-seed mean moved from its part's mean by
    k/(k - 1) (k batch sizes in the part: its leverage 1/k, HC3), so that drawing k of them errs on the wide side of
    their mean's variance (resampling.small_sample_spread, within parts that differ between draws)."""
    out = means.copy()
    finite = np.isfinite(full)
    for part in range(3):
        inside = (parts == part) & finite
        k = inside.sum(axis=1)
        centre = np.where(inside, full, 0.0).sum(axis=1) / np.maximum(k, 1)
        scale = k / np.maximum(k - 1, 1) * (k >= 2) + (k < 2)
        out += np.where(inside, (scale - 1)[:, None] * (full - centre[:, None]), 0.0)
    return out


def degradation_test(
    table: pd.DataFrame, metric: str, b_crit, tolerance: float, n_boot: int = 2000, level: float = 0.95
) -> dict:
    """Linear scaling's promise: the metric within τ of the regime's reference up to B_crit, worse by more than τ
    beyond it.

    The reference is the mean over every batch size at or below B_crit; the claim holds when the regime's upper half
    (above the geometric midpoint of its batch sizes) is within τ of its lower half and the batch sizes above B_crit
    are worse than the reference by more than τ. Each draw resamples the seeds and, independently, the batch sizes
    within each part (the pigeonhole bootstrap), and refits B_crit to the drawn seeds' steps with their residuals'
    signs flipped at random (SeedFit.draws), so that the batch sizes' own effects and B_crit's uncertainty enter
    the intervals. b_crit: a number, or b_crit_of_seeds(steps).
    """
    b_crit_of = b_crit if isinstance(b_crit, (SeedFit, _GivenBCrit)) else _GivenBCrit(float(b_crit))
    sign = -1.0 if any(key in metric for key in HIGHER_IS_BETTER) else 1.0
    finite = table[np.isfinite(table[metric].astype(float))]
    grid = finite.pivot_table(index="batch_size", columns="seed", values=metric, aggfunc="mean").sort_index()
    sizes, values, seeds = grid.index.to_numpy(dtype=float), grid.to_numpy(dtype=float), grid.columns.to_numpy()
    n_units = values.shape[1]
    rng = np.random.default_rng(0)

    def seed_means(cols: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(values[:, cols], axis=-1).T

    b_crit_point, reason = b_crit_of(seeds) if n_units else (math.nan, "no runs")
    full = seed_means(np.arange(n_units)) if n_units else np.full(len(sizes), np.nan)
    parts = regime_parts(sizes, math.nan if reason else b_crit_point)
    n_parts = [int((parts == p).sum()) for p in range(3)] if not reason else [0, 0, 0]
    below_est, above_est = (float(x[0]) for x in regime_changes(full[None], parts[None], sign))
    per_seed = []
    for i in range(n_units):
        b_i, why = b_crit_of(seeds[[i]])
        per_seed.append(math.nan if why else
                        float(regime_changes(values[:, i][None], regime_parts(sizes, b_i)[None], sign)[1][0]))
    below_draws = above_draws = b_draws = np.array([])
    if n_units >= 2 and not reason:
        cols = seed_draws(n_units, n_boot, rng)
        b_draws = b_crit_of.draws(seeds[cols], rng)
        draw_parts = regime_parts(sizes, b_draws)
        spread = _spread_within_parts(seed_means(cols), np.broadcast_to(full, (n_boot, len(sizes))), draw_parts)
        picked = pigeonhole_draws(draw_parts, rng)
        below_draws, above_draws = regime_changes(np.take_along_axis(spread, picked, axis=1), draw_parts, sign)
        flagged = ~np.isfinite(b_draws)
        below_draws, above_draws = np.where(flagged, np.nan, below_draws), np.where(flagged, np.nan, above_draws)
    b_low, b_high = percentile_interval(below_draws, level)
    a_low, a_high = percentile_interval(above_draws, level)
    c_low, c_high = percentile_interval(b_draws, level)
    share = _measured_share(b_draws)
    if reason or min(n_parts) < MIN_PER_PART or n_units < 2 or not enough_draws(share, level):
        verdict = "inconclusive"
    elif b_high <= tolerance and a_low > tolerance:
        verdict = "replicated"
    elif b_low > tolerance or a_high <= tolerance:
        verdict = "not replicated"
    else:
        verdict = "inconclusive"
    few = (f"; fewer than {MIN_PER_PART} batch sizes in a part ({n_parts[0]} in the regime's lower half, "
           f"{n_parts[1]} in its upper half, {n_parts[2]} above B_crit)" if min(n_parts) < MIN_PER_PART else "")
    if reason:
        detail = f"B_crit is not a measurement: {reason}"
    else:
        detail = (
            f"B_crit {b_crit_point:.3g} {_interval(c_low, c_high, '.3g')}, "
            + (f"measured in {share:.0%} of the resamples; " if len(b_draws) else f"no resamples of {n_units} seed; ")
            + f"reference: the mean over the {n_parts[0] + n_parts[1]} batch sizes at or below it; its upper half "
            f"({n_parts[1]} batch sizes) against its lower half ({n_parts[0]}) {below_est:+.3f} "
            f"{_interval(b_low, b_high, '+.3f')}, above it {above_est:+.3f} ({n_parts[2]}){few}; draws: seeds crossed "
            "with the batch sizes within each part, B_crit refitted with its residuals' signs drawn"
            + _clause(describe_interval(above_draws, above_est, a_low, a_high, n_units, level))
        )
    return {
        "statistic": "degradation_above_b_crit",
        "seed_values": per_seed,
        "estimate": above_est,
        "low": a_low,
        "high": a_high,
        "n_x": int(len(sizes)),
        "n_units": int(n_units),
        "n_excluded_runs": int(len(table) - len(finite)),
        "at_smallest": float(np.nanmean(values[0])) if len(values) else math.nan,
        "at_largest": float(np.nanmean(values[-1])) if len(values) else math.nan,
        "detail": f"{detail}; tolerance {tolerance:g}",
        "note": "B_crit not measured" if reason else
        no_interval_note(above_est, a_low, a_high, 1 - share, level) if len(b_draws) else "",
        "verdict": verdict,
    }


def _undefined_text(n: int) -> str:
    """The runs whose B_simple is undefined (a bias-corrected |G|^2 that is not positive), left out and counted."""
    return f", {n} more left out: their bias-corrected |G|² was not positive, so B_simple is undefined" if n else ""


def _b_simple_text(b_simple: float, low: float, high: float) -> str:
    """B_simple at the target and its interval, or that none was measured."""
    return f"{b_simple:.3g} {_interval(low, high, '.3g')}" if math.isfinite(b_simple) else "not measured"


def _crossing_text(factor_off: float) -> str:
    """How far, on average, the checkpoints used lay from the target's crossing; none used, none to say."""
    return f"on average {factor_off:.2g}x from the crossing in steps; " if math.isfinite(factor_off) else ""


def noise_scale_test(noise: pd.DataFrame, steps: pd.DataFrame, factor: float, n_boot: int = 2000, level: float = 0.95) -> dict:
    """B_simple at the target over B_crit, with a bootstrap interval: does the noise scale predict B_crit?

    Every draw resamples the seeds, once for both; B_simple's geometric mean over runs also resamples its batch
    sizes, independently (the pigeonhole bootstrap, each batch size's deviation widened by k/(k - 1)), and B_crit
    is refitted with its residuals' signs drawn (SeedFit.draws), so that an effect a batch size shares across its
    seeds moves both as it moves them in the data. Seeds without gradient statistics count for B_crit only; a
    draw with no measured run has no ratio (left out). A draw with a flagged B_crit has a ratio of unknown value,
    which counts against the interval's tails (at most (1 - level)/2). Every draw's B_simple also carries its runs'
    own estimator noise (their jackknife over the examples measured, with_estimator_noise).
    """
    at = noise_at_crossing(noise, steps)
    b_crit_of = b_crit_of_seeds(steps)
    seeds = b_crit_of.seeds
    rng = np.random.default_rng(0)
    defined = at[np.isfinite(at["b_simple"].astype(float)) & (at["b_simple"].astype(float) > 0)]
    log_b = defined.pivot_table(index="batch_size", columns="seed", values="b_simple",
                                aggfunc=lambda v: float(np.log(v).mean())).reindex(columns=seeds)
    se_of = defined.assign(se=defined["b_simple_log_se"].astype(float).fillna(0.0))
    se = se_of.pivot_table(index="batch_size", columns="seed", values="se", aggfunc="mean").reindex(columns=seeds)
    log_b, se = log_b.to_numpy(dtype=float), se.to_numpy(dtype=float)
    measured_seeds = [s for j, s in enumerate(seeds) if np.isfinite(log_b[:, j]).any()]

    def log_gm(cols) -> float:
        sub = log_b[:, cols]
        return float(np.mean(sub[np.isfinite(sub)])) if np.isfinite(sub).any() else math.nan

    b_crit_point, reason = b_crit_of(seeds)
    b_simple = math.exp(log_gm(np.arange(len(seeds))))
    estimate = b_simple / b_crit_point if not reason and math.isfinite(b_crit_point) else math.nan
    per_seed = []
    for j in range(len(seeds)):
        b_j, why = b_crit_of(seeds[[j]])
        per_seed.append(math.exp(log_gm([j])) / b_j if not why else math.nan)
    ratios = b_simple_draws = b_draws = np.array([])
    unknown: list[bool] = []
    if len(seeds) >= 2 and len(log_b):
        cols = seed_draws(len(seeds), n_boot, rng)
        size_counts, seed_counts = counts(seed_draws(len(log_b), n_boot, rng), len(log_b)), counts(cols, len(seeds))
        log_means = crossed_mean(small_sample_spread(log_b), size_counts, seed_counts)
        variance = crossed_estimator_variance(se, np.isfinite(log_b), size_counts, seed_counts)
        b_simple_draws = with_estimator_noise(np.exp(log_means), variance)
        b_draws = b_crit_of.draws(seeds[cols], rng)
        ratios = b_simple_draws / b_draws
        # a draw with B_simple but a flagged B_crit has a ratio, unknown; one without a measured run has none
        unknown = list(np.isfinite(b_simple_draws) & ~np.isfinite(b_draws))
    low, high = percentile_interval(ratios, level, unknown)
    s_low, s_high = percentile_interval(b_simple_draws, level, [False] * len(b_simple_draws))
    c_low, c_high = percentile_interval(b_draws, level)
    share = _measured_share(b_draws)
    if reason or len(measured_seeds) < 2 or not enough_draws(share, level):
        verdict = "inconclusive"
    else:
        verdict = interval_verdict(low, high, (1 / factor, factor))
    factor_off = geometric_mean(at["step_factor"])
    undefined = int(at["b_simple"].isna().sum())
    used = ", ".join(f"{f:.0%}: {n}" for f, n in at["fraction"].value_counts().sort_index().items())
    b_crit_text = (
        f"B_crit is not a measurement: {reason}" if reason
        else f"B_crit {b_crit_point:.3g} {_interval(c_low, c_high, '.3g')}, measured in {share:.0%} of the resamples"
    )
    return {
        "statistic": "noise_scale_ratio",
        "seed_values": per_seed,
        "estimate": estimate,
        "low": low,
        "high": high,
        "n_x": int(at["batch_size"].nunique()),
        "n_units": len(measured_seeds),
        "note": "B_crit not measured" if reason else "fewer than 2 seeds measured" if len(measured_seeds) < 2
        else no_interval_note(estimate, low, high, 1 - share, level),
        "n_excluded_runs": undefined,
        "at_smallest": math.nan,
        "at_largest": math.nan,
        "detail": f"B_simple at the target {_b_simple_text(b_simple, s_low, s_high)} over {len(at) - undefined} runs of "
        f"{len(measured_seeds)} seeds at {len(log_b)} batch sizes{_undefined_text(undefined)} (checkpoints used, by "
        f"fraction of training: {used or 'none'}; {_crossing_text(factor_off)}"
        f"{estimator_text(at)}); {b_crit_text}; factor {factor:g}; draws: seeds crossed with B_simple's batch sizes, "
        "B_crit refitted with its residuals' signs drawn"
        + _clause(describe_interval(ratios, estimate, low, high, len(seeds), level, unknown=unknown)),
        "verdict": verdict,
    }
