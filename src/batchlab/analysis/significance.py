"""Trend tests whose units are the batch sizes, equivalence and multiplicity corrections, and how seed spread is shown.

Seeds share each batch size's data order and learning rate, so an effect of the batch size shared by its seeds is no
smaller with more seeds: a trend is tested by permuting batch sizes, and a handful of seeds gets a range, not an interval.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import norm, rankdata

EXACT_MAX_N = 8
MIN_SEEDS_FOR_INTERVAL = 5
SPEARMAN_VARIANCE_FACTOR = 1.06
VERDICTS = ("replicated", "not replicated", "inconclusive")


@dataclass(frozen=True)
class TrendTest:
    """Spearman's rho of a metric on batch size and its one-sided permutation p-values over the batch sizes."""

    rho: float
    p_increasing: float
    p_decreasing: float
    n: int
    exact: bool


@lru_cache(maxsize=EXACT_MAX_N)
def _all_permutations(n: int) -> np.ndarray:
    """Every permutation of range(n), one a row (n! rows)."""
    permutations = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    permutations.setflags(write=False)
    return permutations


@lru_cache(maxsize=16)
def _random_permutations(n: int, n_perm: int, seed: int) -> np.ndarray:
    """n_perm random permutations of range(n) from PCG64(seed), one a row."""
    rng = np.random.Generator(np.random.PCG64(seed))
    permutations = rng.permuted(np.tile(np.arange(n, dtype=np.int16), (n_perm, 1)), axis=1)
    permutations.setflags(write=False)
    return permutations


def _centred_unit(values: np.ndarray) -> np.ndarray:
    """Values minus their mean, scaled to unit Euclidean norm."""
    centred = values - values.mean()
    return centred / np.sqrt(centred @ centred)


def spearman_trend(x, y, n_perm: int = 20000, seed: int = 0) -> TrendTest:
    """Spearman's rho of y on x with one-sided permutation p-values: exact up to 8 points, else Monte Carlo."""
    x_values, y_values = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if len(x_values) != len(y_values):
        raise ValueError(f"x has {len(x_values)} values, y has {len(y_values)}")
    n = len(y_values)
    if n < 3 or np.ptp(y_values) == 0 or np.ptp(x_values) == 0:
        return TrendTest(math.nan, 1.0, 1.0, n, False)
    x_ranks = _centred_unit(rankdata(x_values))
    y_ranks = _centred_unit(rankdata(y_values))
    rho = float(np.clip(x_ranks @ y_ranks, -1.0, 1.0))
    exact = n <= EXACT_MAX_N
    permutations = _all_permutations(n) if exact else _random_permutations(n, n_perm, seed)
    permuted_rhos = y_ranks[permutations] @ x_ranks
    at_least = int(np.count_nonzero(permuted_rhos >= rho - 1e-12))
    at_most = int(np.count_nonzero(permuted_rhos <= rho + 1e-12))
    if exact:
        total = len(permutations)
        return TrendTest(rho, at_least / total, at_most / total, n, True)
    return TrendTest(rho, (1 + at_least) / (1 + n_perm), (1 + at_most) / (1 + n_perm), n, False)


def rho_equivalence_p(rho: float, n: int, margin: float) -> float:
    """TOST p-value for |rho| < margin on Fisher's z, with Spearman's standard error sqrt(1.06 / (n - 3))."""
    if n <= 3 or not (math.isfinite(rho) and math.isfinite(margin)) or margin <= 0:
        return 1.0
    standard_error = math.sqrt(SPEARMAN_VARIANCE_FACTOR / (n - 3))
    with np.errstate(divide="ignore"):
        z_rho, z_margin = float(np.arctanh(rho)), float(np.arctanh(min(margin, 1.0)))
    p_below_upper = norm.cdf((z_rho - z_margin) / standard_error)
    p_above_lower = norm.sf((z_rho + z_margin) / standard_error)
    return float(max(p_below_upper, p_above_lower))


def _at_most(p: float, alpha: float) -> bool:
    """Whether a p-value is finite and at most alpha."""
    return math.isfinite(p) and p <= alpha


def trend_verdict(
    rho: float, p_claimed: float, p_opposite: float, p_equivalent: float, sign: int, min_effect: float, alpha: float
) -> tuple[str, str]:
    """The verdict on a trend claim of direction sign (+1 up, -1 down) and a sentence saying which condition decided."""
    if not math.isfinite(rho):
        return "inconclusive", "ρ is not defined (fewer than 3 batch sizes, or the metric is the same at all of them)"
    toward_claim, toward_opposite = ("≥", "≤") if sign > 0 else ("≤", "≥")
    claimed_bound, opposite_bound, rho_text = sign * min_effect, -sign * min_effect, f"ρ = {rho:.2f}"
    if _at_most(p_claimed, alpha) and sign * rho >= min_effect:
        return "replicated", (
            f"p = {p_claimed:.3g} ≤ {alpha:g} in the claimed direction and {rho_text} {toward_claim} {claimed_bound:g}"
        )
    if _at_most(p_opposite, alpha) and -sign * rho >= min_effect:
        return "not replicated", (
            f"p = {p_opposite:.3g} ≤ {alpha:g} in the opposite direction and {rho_text} {toward_opposite} "
            f"{opposite_bound:g}"
        )
    if _at_most(p_equivalent, alpha):
        return "not replicated", (
            f"equivalence p = {p_equivalent:.3g} ≤ {alpha:g}: {rho_text} lies within the margin of no trend"
        )
    if _at_most(p_claimed, alpha):
        return "inconclusive", (
            f"p = {p_claimed:.3g} ≤ {alpha:g} in the claimed direction but {rho_text} falls short of {claimed_bound:g}"
        )
    return "inconclusive", (
        f"p = {p_claimed:.3g} > {alpha:g} in the claimed direction ({rho_text}), and neither an opposite trend "
        f"(p = {p_opposite:.3g}) nor no trend (equivalence p = {p_equivalent:.3g}) is shown"
    )


def _finite_sorted(pvalues) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All p-values as floats, the positions of the finite ones in ascending order of p, and those p-values."""
    values = np.asarray(pvalues, dtype=float).ravel()
    finite_positions = np.flatnonzero(np.isfinite(values))
    order = finite_positions[np.argsort(values[finite_positions], kind="stable")]
    return values, order, values[order]


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in the input's order; NaN stays NaN."""
    values, order, ascending = _finite_sorted(pvalues)
    adjusted = np.full(values.shape, np.nan)
    m = len(ascending)
    if m:
        scaled = ascending * m / np.arange(1, m + 1)
        adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return adjusted


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order; NaN stays NaN."""
    values, order, ascending = _finite_sorted(pvalues)
    adjusted = np.full(values.shape, np.nan)
    m = len(ascending)
    if m:
        scaled = ascending * (m - np.arange(m))
        adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def _seed_word(n: int) -> str:
    """'one seed' or 'N seeds'."""
    return "one seed" if n == 1 else f"{n} seeds"


def seed_spread(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """How the seeds of one estimate spread: a bootstrap interval of their mean from 5 seeds up, else their range."""
    finite = np.asarray(values, dtype=float).ravel()
    finite = finite[np.isfinite(finite)]
    n = len(finite)
    if n == 0:
        return {"kind": "none", "low": math.nan, "high": math.nan, "n": 0, "label": "no seeds"}
    if n == 1 or np.ptp(finite) == 0:
        label = "one seed" if n == 1 else f"{n} seeds, all equal"
        return {"kind": "single", "low": float(finite[0]), "high": float(finite[0]), "n": n, "label": label}
    if n < MIN_SEEDS_FOR_INTERVAL:
        return {"kind": "range", "low": float(finite.min()), "high": float(finite.max()), "n": n,
                "label": f"range over {n} seeds"}
    rng = np.random.Generator(np.random.PCG64(seed))
    means = finite[rng.integers(0, n, (n_boot, n))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"kind": "interval", "low": float(low), "high": float(high), "n": n,
            "label": f"{100 * level:g}% interval over {n} seeds"}


def format_spread(estimate: float, spread: dict, spec: str = ".2f") -> str:
    """An estimate with its seed spread in words: '0.42 (range over 3 seeds 0.40–0.45)', '0.42 [0.38, 0.47] (…)'."""
    text = format(estimate, spec)
    if spread["kind"] == "interval":
        return f"{text} [{format(spread['low'], spec)}, {format(spread['high'], spec)}] ({spread['label']})"
    if spread["kind"] == "range":
        return f"{text} ({spread['label']} {format(spread['low'], spec)}–{format(spread['high'], spec)})"
    return f"{text} ({spread['label']})"


def simulate_trend_table(
    sizes, n_seeds: int, planted_rho_slope: float, size_sd: float, seed_sd: float, rng: np.random.Generator
) -> np.ndarray:
    """Metric per (batch size, seed): slope x standardized log2 size + an effect per size shared by seeds + seed noise."""
    log_sizes = np.log2(np.asarray(sizes, dtype=float))
    n_sizes = len(log_sizes)
    standardized = (log_sizes - log_sizes.mean()) / log_sizes.std()
    size_effect = rng.normal(0.0, size_sd, n_sizes) if size_sd > 0 else np.zeros(n_sizes)
    seed_noise = rng.normal(0.0, seed_sd, (n_sizes, n_seeds)) if seed_sd > 0 else np.zeros((n_sizes, n_seeds))
    return (planted_rho_slope * standardized + size_effect)[:, None] + seed_noise


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
