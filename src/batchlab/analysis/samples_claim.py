"""The scorecard's claim that samples seen, not steps or batch size, set a curve metric (Vaessen & van Leeuwen 2024),
scored at or below the measured B_crit, McCandlish et al.'s perfect-scaling regime, where they should.

The test fits one exponent: the c for which every batch size's log loss, logged at step s, falls onto one smooth
curve (a cubic) in log(s × B^c). c = 1 is samples seen (s × B), c = 0 optimizer steps, and a large c batch size
alone; read as scaling, a batch twice as large reaches a loss in 2^-c times the steps. An ordering statistic such
as Spearman's ρ against each clock cannot see this: every curve rises in steps and in samples at once, so both
order the points almost equally well whichever clock sets the loss.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from batchlab.analysis.b_crit_claims import b_crit_of_seeds

PREDICTORS = ("samples_seen", "step", "batch_size")
DEGREE = 3  # the smooth curve: a cubic (fewer terms where the clock takes fewer values)
RANK_TOL = 1e-10  # relative size below which a direction of the fit's normal equations counts as absent
EXPONENTS = np.linspace(-1.0, 3.0, 81)  # the exponents c tried: steps (0), samples (1) and well beyond either


def cubic_design(log_x: np.ndarray) -> np.ndarray:
    """[n, d + 1] powers 0..d of log_x standardised, d = min(DEGREE, distinct values - 1)."""
    log_x = np.asarray(log_x, dtype=float)
    spread = log_x.std()
    z = (log_x - log_x.mean()) / spread if spread > 0 else np.zeros_like(log_x)
    degree = min(DEGREE, len(np.unique(log_x)) - 1)
    return np.vander(z, max(degree, 0) + 1, increasing=True)


def weighted_r2(design: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """R² per row of y ([rows, n]) of its weighted least-squares fit on design ([n, p], with a column of ones), each
    item counted `weights` times (0 or y not finite: left out); NaN where fewer than 3 items count or y does not vary.

    The explained sum of squares of the centred y is h'G⁺h (G = X'WX, h = X'W(y - ȳ)); the pseudo-inverse gives the
    same fit where the items left in take so few distinct values of the clock that some power of it is redundant."""
    w = np.where(np.isfinite(y), weights, 0.0)
    y0 = np.where(w > 0, y, 0.0)
    total = w.sum(axis=1)
    p = design.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = y0 - ((w * y0).sum(axis=1) / total)[:, None]
        tss = (w * centred**2).sum(axis=1)
        gram = (w @ (design[:, :, None] * design[:, None, :]).reshape(len(design), p * p)).reshape(-1, p, p)
        h = (w * centred) @ design
        explained = np.einsum("bi,bij,bj->b", h, np.linalg.pinv(gram, rcond=RANK_TOL, hermitian=True), h)
        r2 = explained / tss
    ok = (total >= 3) & (tss > 1e-12 * np.maximum(total, 1))
    return np.where(ok, np.clip(r2, 0.0, 1.0), np.nan)


def fit_exponent(log_step: np.ndarray, log_b: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of y ([rows, n]): the exponent c whose clock log step + c log B best collapses y onto one cubic (the
    least residual share over EXPONENTS, refined by a parabola through the best and its neighbours; at the ends of
    EXPONENTS, that end). NaN where fewer than 2 batch sizes count, which leave c unidentified."""
    residual = np.stack([1.0 - weighted_r2(cubic_design(log_step + c * log_b), y, weights) for c in EXPONENTS], axis=1)
    filled = np.where(np.isfinite(residual), residual, np.inf)
    best = np.argmin(filled, axis=1)
    inner = np.clip(best, 1, len(EXPONENTS) - 2)
    rows = np.arange(len(y))
    left, mid, right = (filled[rows, inner + k] for k in (-1, 0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        curvature = left - 2 * mid + right
        shift = np.where((best == inner) & (curvature > 0), 0.5 * (left - right) / curvature, 0.0)
    step = EXPONENTS[1] - EXPONENTS[0]
    c = EXPONENTS[best] + np.clip(np.nan_to_num(shift), -0.5, 0.5) * step
    counted = (np.where(np.isfinite(y), weights, 0.0) > 0)
    sizes_counted = np.array([len(np.unique(log_b[row])) for row in counted])
    return np.where((sizes_counted >= 2) & np.isfinite(residual).any(axis=1), c, np.nan)


def _log(values: np.ndarray) -> np.ndarray:
    """The log of a loss; a value at or below 0 (no loss has one) is left out, as a missing point is."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)


def _clocks(points: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return np.log(points["step"].to_numpy(dtype=float)), np.log(points["batch_size"].to_numpy(dtype=float))


def samples_exponent(points: pd.DataFrame, metric: str) -> dict[str, float]:
    """The fitted exponent c of batch size in the clock (module docstring) over curve points, and the R² of one cubic
    in the log of each of samples seen, steps and batch size, for the reader."""
    y = _log(points[metric].to_numpy(dtype=float))[None, :]
    ones = np.ones_like(y)
    r2 = {c: float(weighted_r2(cubic_design(np.log(points[c].to_numpy(dtype=float))), y, ones)[0]) for c in PREDICTORS}
    return {"exponent": float(fit_exponent(*_clocks(points), y, ones)[0]), **r2}


def exponent_se(points: pd.DataFrame, y: np.ndarray, c: float) -> tuple[float, int]:
    """The standard error of the fitted exponent c with the batch sizes as the units, and its degrees of freedom.

    Linearised at c: the cubic f is fitted in log(step × B^c), and a change dc of c moves point i by f'(x_i) log B_i.
    Each batch size's mean residual is regressed on its mean of that derivative (k batch sizes, k - 2 degrees of
    freedom); the slope's standard error is c's. Where f is a straight line (a power law) this is the ordinary
    regression of each batch size's shift of its curve on log B, exact for shifts drawn normally."""
    ok = np.isfinite(y)
    log_step, log_b = (v[ok] for v in _clocks(points))
    x = log_step + c * log_b
    mean, spread = x.mean(), x.std()
    design = cubic_design(x)
    beta, *_ = np.linalg.lstsq(design, y[ok], rcond=None)
    residual = y[ok] - design @ beta
    z = (x - mean) / spread
    slope = sum(j * beta[j] * z ** (j - 1) for j in range(1, len(beta))) / spread  # f'(x)
    frame = pd.DataFrame({"b": log_b, "e": residual, "d": slope * log_b}).groupby("b").mean()
    k = len(frame)
    if k < 3:
        return math.nan, max(k - 2, 0)
    d = frame["d"].to_numpy() - frame["d"].mean()
    fit = np.polyfit(frame["d"].to_numpy(), frame["e"].to_numpy(), 1)
    rest = frame["e"].to_numpy() - np.polyval(fit, frame["d"].to_numpy())
    denominator = float((d**2).sum())
    if denominator <= 0:
        return math.nan, k - 2
    return math.sqrt(float((rest**2).sum()) / (k - 2) / denominator), k - 2


def samples_predict_test(curves: pd.DataFrame, metric: str, tolerance: float, level: float = 0.95) -> dict:
    """Whether samples seen set a curve metric (Vaessen & van Leeuwen 2024): the exponent c of batch size in the clock
    the seed-mean curves collapse onto (module docstring), with a t interval over the batch sizes; replicated
    when the interval lies wholly within 1 ± δ (δ ≤ 1/2: samples seen, nearer them than steps), not replicated when
    it lies wholly outside (nearer steps, or batch size counting for more than samples), inconclusive otherwise.

    The batch sizes are the units: an effect a batch size shares across its seeds (a data order, a learning rate
    that suits it) shifts its curve as c would, so only the spread between batch sizes, not between seeds, says how
    well c is known. The interval is c ± t(k - 2) × exponent_se over the k batch sizes, and the p-value that of the
    two one-sided tests (TOST) that c lies within 1 ± δ.
    """
    finite = curves[np.isfinite(curves[metric].astype(float))]
    grid = finite.pivot_table(index=["batch_size", "step", "samples_seen"], columns="seed", values=metric, aggfunc="mean")
    points = grid.index.to_frame(index=False)
    values = grid.to_numpy(dtype=float)
    n_units, n_sizes = values.shape[1], points["batch_size"].nunique()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=1)
        point = samples_exponent(points.assign(**{metric: mean}), metric) if n_units else {}
        per_seed = fit_exponent(*_clocks(points), _log(values.T), np.ones(values.T.shape)).tolist() if n_units else []
        estimate = point.get("exponent", math.nan)
        se, df = exponent_se(points, _log(mean), estimate) if n_sizes >= 3 and math.isfinite(estimate) else (math.nan, 0)
    low = high = p_value = math.nan
    if math.isfinite(se):
        t = float(stats.t.ppf((1 + level) / 2, df))
        low, high = estimate - t * se, estimate + t * se
        p_value = tost_p(estimate, se, df, 1 - tolerance, 1 + tolerance)
    inside = (1 - tolerance, 1 + tolerance)
    if not (math.isfinite(low) and math.isfinite(high)):
        verdict = "inconclusive"
    elif inside[0] < low and high < inside[1]:
        verdict = "replicated"
    elif high < inside[0] or low > inside[1]:
        verdict = "not replicated"
    else:
        verdict = "inconclusive"
    final = points.assign(value=mean).groupby("batch_size")["value"].last()  # the seed mean at each size's last step
    r2 = ", ".join(f"in log {name} {point.get(c, math.nan):.3f}"
                   for c, name in zip(PREDICTORS, ("samples seen", "steps", "batch size")))
    return {
        "statistic": "samples_exponent",
        "seed_values": per_seed,
        "estimate": estimate,
        "low": low,
        "high": high,
        "p_value": p_value,
        "n_boot": 0,
        "n_x": int(n_sizes),
        "n_units": int(n_units),
        "n_excluded_runs": int(curves.groupby(["batch_size", "seed"]).ngroups - finite.groupby(["batch_size", "seed"]).ngroups),
        "at_smallest": float(final.iloc[0]) if n_sizes else math.nan,
        "at_largest": float(final.iloc[-1]) if n_sizes else math.nan,
        "min_effect": tolerance,
        "interval_kind": f"t interval over {n_sizes} batch sizes",
        "detail": f"the log loss follows one curve in log(step × B^c) with c = {estimate:.2f} (samples seen 1, steps 0; "
        f"replicated within {inside[0]:g} to {inside[1]:g}, TOST p = {p_value:.3g}); R² of one cubic {r2}; seeds: "
        + ", ".join(f"{c:.2f}" for c in per_seed),
        "verdict": verdict,
    }


def tost_p(estimate: float, se: float, df: int, low: float, high: float) -> float:
    """The p-value of the two one-sided t tests that a parameter lies within (low, high): the larger of the two."""
    if se <= 0:
        return 0.0 if low < estimate < high else 1.0
    return float(max(stats.t.sf((estimate - low) / se, df), stats.t.sf((high - estimate) / se, df)))


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
