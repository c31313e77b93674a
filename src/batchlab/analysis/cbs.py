"""Critical batch size from training runs: steps-to-target, the S(B) fit and bootstrap intervals.

McCandlish et al. (2018): S(B) = S_min (1 + B_crit / B), E(B) = B S(B) = E_min (1 + B / B_crit),
B_crit = E_min / S_min. Zhang et al. (2025) call critical the batch size where S exceeds linear scaling
by 20%: with S = a + b/B that is a + b/B = 1.2 b/B, so B_20 = b / (5a) = B_crit / 5. Both are reported,
named apart. Metrics are "lower is better" (losses, error rates): a run reaches the target at the
first logged step where metric <= target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from batchlab.analysis.resampling import percentile_interval, resample
from batchlab.measure.crossing import steps_to_target  # noqa: F401  (re-exported: the analysis's name for it)

QUANTITIES = ("s_min", "b_crit", "b_20", "b_20_empirical")


def steps_table(curves: pd.DataFrame, metric: str, target: float, interpolate: bool = True) -> pd.DataFrame:
    """Steps and samples to target for every (batch_size, seed) run; never-reached runs kept with reached=False."""
    rows = []
    for (b, seed), run in curves.groupby(["batch_size", "seed"]):
        s = steps_to_target(run["step"], run[metric], target, interpolate)
        rows.append({"batch_size": int(b), "seed": int(seed), "steps": s, "samples": s * b, "reached": not math.isnan(s)})
    return pd.DataFrame(rows, columns=["batch_size", "seed", "steps", "samples", "reached"])


@dataclass
class StepsFit:
    """Fitted S(B) = s_min (1 + b_crit / B); e_min = s_min b_crit, b_20 = b_crit / 5."""

    s_min: float
    b_crit: float
    e_min: float
    b_20: float
    rmse_log: float  # root mean square of log(S_obs) - log(S_model)
    n_points: int

    def steps(self, batch_size) -> np.ndarray:
        return self.s_min * (1 + self.b_crit / np.asarray(batch_size, dtype=float))

    def samples(self, batch_size) -> np.ndarray:
        return np.asarray(batch_size, dtype=float) * self.steps(batch_size)


def fit_steps_model(batch_sizes, steps) -> StepsFit:
    """Least squares in log space of S(B) = S_min (1 + B_crit / B), over log parameters to keep them positive.

    Points with non-finite or non-positive steps are dropped; at least 3 distinct batch sizes must
    remain. Repeated batch sizes (one point per run) are allowed. The initial guess comes from a
    linear least-squares fit of S on 1/B (S = a + c/B, S_min = a, B_crit = c/a).
    """
    b = np.asarray(batch_sizes, dtype=float).ravel()
    s = np.asarray(steps, dtype=float).ravel()
    if b.shape != s.shape:
        raise ValueError(f"batch_sizes and steps differ in length: {b.shape} vs {s.shape}")
    ok = np.isfinite(s) & (s > 0) & np.isfinite(b) & (b > 0)
    b, s = b[ok], s[ok]
    distinct = len(np.unique(b))
    if distinct < 3:
        raise ValueError(
            f"the S(B) fit needs at least 3 distinct batch sizes with finite steps to target, got {distinct}"
        )
    design = np.column_stack([np.ones_like(b), 1 / b])
    (a0, c0), *_ = np.linalg.lstsq(design, s, rcond=None)
    s_min0 = a0 if a0 > 0 else 0.1 * s.min()
    b_crit0 = max(c0 / s_min0, 1e-3 * b.min())

    def residual(theta: np.ndarray) -> np.ndarray:
        s_min, b_crit = np.exp(theta)
        return np.log(s) - np.log(s_min * (1 + b_crit / b))

    res = least_squares(residual, np.log([s_min0, b_crit0]), method="lm")
    s_min, b_crit = np.exp(res.x)
    return StepsFit(
        s_min=float(s_min),
        b_crit=float(b_crit),
        e_min=float(s_min * b_crit),
        b_20=float(b_crit / 5),
        rmse_log=float(np.sqrt(np.mean(res.fun**2))),
        n_points=int(len(b)),
    )


def empirical_b20(batch_sizes, steps) -> float:
    """Model-free 20% rule: the largest measured B with S(B) <= 1.2 S(B0) B0 / B, B0 the smallest batch size.

    S(B0) B0 / B is perfect linear scaling from B0. Input is one value per batch size (repeats are
    averaged); batch sizes with non-finite steps are left out, so B0 is the smallest that reached the
    target. NaN with fewer than 2 such batch sizes. Under the S(B) model the condition reads
    B <= 1.2 B0 + B_crit / 5, so this approaches B_20 as B0 -> 0.
    """
    b = np.asarray(batch_sizes, dtype=float).ravel()
    s = np.asarray(steps, dtype=float).ravel()
    ok = np.isfinite(s) & np.isfinite(b) & (b > 0)
    if not ok.any():
        return math.nan
    means = pd.Series(s[ok]).groupby(b[ok]).mean().sort_index()
    b, s = means.index.to_numpy(dtype=float), means.to_numpy()
    if len(b) < 2:
        return math.nan
    within = s <= 1.2 * s[0] * b[0] / b
    return float(b[within].max())


def steps_matrix(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch sizes, seeds and a [batch size, seed] array of steps with NaN where not reached (or missing)."""
    steps = table["steps"].astype(float)
    if "reached" in table:
        steps = steps.where(table["reached"].astype(bool))
    grid = table.assign(steps=steps).pivot(index="batch_size", columns="seed", values="steps").sort_index()
    return grid.index.to_numpy(dtype=float), grid.columns.to_numpy(), grid.to_numpy(dtype=float)


def seed_mean_steps(grid: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Per batch size, the mean steps over the chosen seed columns of runs that reached the target (NaN if none)."""
    sub = grid[:, columns]
    hit = np.isfinite(sub)
    count = hit.sum(axis=1)
    total = np.where(hit, sub, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.full(len(grid), np.nan), where=count > 0)


def _estimates(sizes: np.ndarray, mean_steps: np.ndarray) -> list[float]:
    try:
        fit = fit_steps_model(sizes, mean_steps)
        fitted = [fit.s_min, fit.b_crit, fit.b_20]
    except ValueError:
        fitted = [math.nan] * 3
    return [*fitted, empirical_b20(sizes, mean_steps)]


def bootstrap_fit(table: pd.DataFrame, n_boot: int = 1000, level: float = 0.95, rng=None) -> pd.DataFrame:
    """Estimates and percentile intervals of S_min, B_crit, B_20 and the empirical B_20, resampling seeds.

    table has one row per run: batch_size, seed, steps (NaN = never reached) and optionally reached.
    Per batch size the MEAN steps of the runs that reached the target enter the fit; batch sizes where
    none did are left out (n_excluded counts them in the original table). Seeds are resampled with
    replacement and the same resampled seeds serve every batch size (runs of one seed are paired).
    The interval is the (1-level)/2 and (1+level)/2 quantiles of the replicates, n_boot_ok of n_boot
    of which have a finite value; those without one (too few batch sizes reached the target in them)
    count as draws of unknown value (batchlab.analysis.resampling.percentile_interval): the interval holds
    wherever they lie, and there is none when they are more than (1-level)/2 of the draws.
    rng: a numpy Generator or a seed; None means default_rng(0).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)
    sizes, seeds, grid = steps_matrix(table)
    n_excluded = int((~np.isfinite(grid).any(axis=1)).sum())

    def mean_steps(columns: np.ndarray) -> np.ndarray:
        return seed_mean_steps(grid, columns)

    estimate = _estimates(sizes, mean_steps(np.arange(len(seeds))))
    draws = np.array(
        resample(lambda columns: _estimates(sizes, mean_steps(columns)), len(seeds), n_boot, rng), dtype=float
    ).reshape(n_boot, len(QUANTITIES))
    try:
        rmse_log = fit_steps_model(sizes, mean_steps(np.arange(len(seeds)))).rmse_log
    except ValueError:
        rmse_log = math.nan
    rows = []
    for k, name in enumerate(QUANTITIES):
        vals = draws[:, k][np.isfinite(draws[:, k])]
        low, high = percentile_interval(draws[:, k], level)
        rows.append(
            {
                "quantity": name,
                "estimate": float(estimate[k]),
                "low": float(low),
                "high": float(high),
                "level": level,
                "n_boot": n_boot,
                "n_boot_ok": int(len(vals)),
                "n_excluded": n_excluded,
                "rmse_log": rmse_log,
            }
        )
    return pd.DataFrame(rows)
