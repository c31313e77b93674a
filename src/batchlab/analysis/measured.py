"""What counts as a measured critical batch size: one rule, read by the study pages, the grid and the scorecard.

A critical-batch estimate (B_crit and B_20 from the S(B) = S_min(1 + B_crit/B) fit, the model-free
B_20) is a measurement only when the runs pin it down. It is flagged, with the reasons written out,
when
- it lies below the smallest or above the largest batch size that reached the target: the fit then
  extrapolates (for the model-free B_20, which is always a measured batch size, when the 20% rule
  already fails at the second batch size or still holds at the largest);
- fewer than MIN_BATCH_SIZES batch sizes reached the target: two parameters fitted to three points
  leave one degree of freedom;
- the fit's root-mean-square log residual exceeds MAX_RMSE_LOG: S(B) = S_min(1 + B_crit/B) does not
  describe the steps (0.15 is a 16% typical miss per batch size);
- for B_crit and B_20, the batch sizes that reached the target do not span both regimes: fewer than
  PER_REGIME of them at or below B_crit/REGIME_FACTOR (where steps fall almost as 1/B, S >= 3 S_min) or
  fewer than PER_REGIME at or above REGIME_FACTOR x B_crit (where steps have levelled, S <= 1.5 S_min).
  With one regime only, the two parameters trade off along the curve the points lie on.
A flagged estimate is shown greyed and never drawn beyond the data; a claim resting on it is
inconclusive.
"""

from __future__ import annotations

import math

import numpy as np

from batchlab.analysis.cbs import fit_steps_model
from batchlab.config.measures import RATE_CHECK_SPAN

MIN_BATCH_SIZES = 4
MAX_RMSE_LOG = 0.15
REGIME_FACTOR = 2.0
PER_REGIME = 2
FITTED = ("s_min", "b_crit", "b_20")
BATCH_SIZES = ("b_crit", "b_20", "b_20_empirical")
NAMES = {"s_min": "S_min", "b_crit": "B_crit", "b_20": "B_20", "b_20_empirical": "the model-free B_20"}


def flag_reasons(quantity: str, estimate: float, reached_sizes, rmse_log: float) -> list[str]:
    """Why an estimate is not a measurement (an empty list when it is one).

    quantity: s_min, b_crit, b_20 or b_20_empirical; reached_sizes: the batch sizes whose runs reached
    the target (those the fit used); rmse_log: the fit's root-mean-square log residual.
    """
    sizes = np.unique(np.asarray(reached_sizes, dtype=float))
    name = NAMES.get(quantity, quantity)
    if not math.isfinite(estimate):
        return [f"{name} could not be estimated ({len(sizes)} batch sizes reached the target)"]
    reasons = []
    if len(sizes) < MIN_BATCH_SIZES:
        reasons.append(f"only {len(sizes)} batch sizes reached the target (the rule asks for {MIN_BATCH_SIZES})")
    if quantity == "b_20_empirical" and len(sizes):
        if len(sizes) > 1 and estimate <= sizes[0]:
            reasons.append(f"the 20% rule already fails at the second batch size reached: B_20 lies below {sizes[0]:g}")
        elif estimate >= sizes[-1]:
            reasons.append(f"the 20% rule still holds at the largest batch size reached: B_20 is at least {sizes[-1]:g}")
    elif quantity in BATCH_SIZES and len(sizes):
        if estimate < sizes[0]:
            reasons.append(f"{name} = {estimate:.3g} lies below the smallest batch size that reached the target ({sizes[0]:g})")
        elif estimate > sizes[-1]:
            reasons.append(f"{name} = {estimate:.3g} lies above the largest batch size that reached the target ({sizes[-1]:g})")
    if quantity in ("b_crit", "b_20") and len(sizes) and sizes[0] <= estimate <= sizes[-1]:
        reasons += regime_reasons(estimate * (5 if quantity == "b_20" else 1), sizes)
    if quantity in FITTED and math.isfinite(rmse_log) and rmse_log > MAX_RMSE_LOG:
        reasons.append(f"the S(B) fit misses the steps by {rmse_log:.2f} in log (RMS; the rule allows {MAX_RMSE_LOG})")
    return reasons


def regime_reasons(b_crit: float, sizes: np.ndarray) -> list[str]:
    """Why the batch sizes reached do not pin B_crit down: too few of them clearly on either side of it."""
    below = int((sizes <= b_crit / REGIME_FACTOR).sum())
    above = int((sizes >= b_crit * REGIME_FACTOR).sum())
    if below >= PER_REGIME and above >= PER_REGIME:
        return []
    return [f"the batch sizes that reached the target do not span both regimes: {below} at or below B_crit/"
            f"{REGIME_FACTOR:g} = {b_crit / REGIME_FACTOR:.3g} and {above} at or above {REGIME_FACTOR:g}B_crit = "
            f"{b_crit * REGIME_FACTOR:.3g} (the rule asks for {PER_REGIME} of each)"]


def flag(quantity: str, estimate: float, reached_sizes, rmse_log: float) -> str:
    """The reasons as one sentence ('' for a measured estimate): the table's `flag` column."""
    return "; ".join(flag_reasons(quantity, estimate, reached_sizes, rmse_log))


def measured_b_crit(sizes: np.ndarray, mean_steps: np.ndarray) -> tuple[float, str]:
    """B_crit of the S(B) fit to per-batch-size mean steps (NaN = not reached) and its flag ('' = measured)."""
    sizes, mean_steps = np.asarray(sizes, dtype=float), np.asarray(mean_steps, dtype=float)
    reached = sizes[np.isfinite(mean_steps) & (mean_steps > 0)]
    try:
        fit = fit_steps_model(sizes, mean_steps)
    except ValueError:
        return math.nan, flag("b_crit", math.nan, reached, math.nan)
    return fit.b_crit, flag("b_crit", fit.b_crit, reached, fit.rmse_log)


RATE_LIMIT_FACTOR = 2.0  # B_crit moving by more than this between two fixed rates 4x apart: it follows the rate
RATE_LIMIT_SPAN = RATE_CHECK_SPAN


def rate_limited(b_crit_by_rate: dict[float, float]) -> bool:
    """Whether a fixed-rate B_crit follows the rate: refitted at rates at least 4x apart, it moves by more than 2x.

    With one rate for every batch size S(B) flattens where the rate binds (McCandlish et al. assume it tuned), so
    a B_crit that moves with the rate measures the rate, not the gradient noise."""
    rates = sorted(r for r, b in b_crit_by_rate.items() if np.isfinite(b) and b > 0)
    if len(rates) < 2 or rates[-1] / rates[0] < RATE_LIMIT_SPAN:
        raise ValueError(f"a rate-limit check needs finite B_crit at two rates at least {RATE_LIMIT_SPAN:g}x apart, "
                         f"got {b_crit_by_rate}")
    values = [b_crit_by_rate[r] for r in rates]
    return max(values) / min(values) > RATE_LIMIT_FACTOR
