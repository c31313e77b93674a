"""Critical batch size from training runs: steps-to-target, the S(B) fit and bootstrap intervals.

McCandlish et al. (2018): S(B) = S_min (1 + B_crit / B), E(B) = B S(B) = E_min (1 + B / B_crit),
B_crit = E_min / S_min. Zhang et al. (2025) call critical the batch size where S exceeds linear scaling
by 20%: with S = a + b/B that is a + b/B = 1.2 b/B, so B_20 = b / (5a) = B_crit / 5. Both are reported,
named apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares


def steps_to_target(steps, metric, target: float, interpolate: bool = True) -> float:
    """First step at which the logged metric reaches the target (<=); NaN if it never does.

    With interpolate, the crossing is placed between the two bracketing logged points linearly in
    log(step), since the curves are logged at log-spaced steps.
    """
    steps, metric = np.asarray(steps, dtype=float), np.asarray(metric, dtype=float)
    hit = np.flatnonzero(metric <= target)
    if len(hit) == 0:
        return math.nan
    i = hit[0]
    if i == 0 or not interpolate:
        return float(steps[i])
    m0, m1 = metric[i - 1], metric[i]
    t = (m0 - target) / (m0 - m1)
    return float(np.exp(np.log(steps[i - 1]) + t * (np.log(steps[i]) - np.log(steps[i - 1]))))


def resolve_target(curves: pd.DataFrame, metric: str, kind: str, value: float, run_keys=("batch_size", "seed")) -> float:
    """The target metric value: `value` itself, or a fraction of the best run's improvement.

    fraction: target = initial - value * (initial - best_final), where initial is the mean over runs of
    the metric at each run's first logged point and best_final the lowest final metric of any run.
    """
    if kind == "value":
        return float(value)
    ordered = curves.sort_values([*run_keys, "step"])
    runs = ordered.groupby(list(run_keys))[metric]
    initial = runs.first().mean()
    best_final = runs.last().min()
    return float(initial - value * (initial - best_final))


def steps_table(curves: pd.DataFrame, metric: str, target: float, interpolate: bool = True) -> pd.DataFrame:
    """Steps and samples to target for every run; never-reached runs kept with reached=False."""
    rows = []
    for (b, seed), run in curves.sort_values("step").groupby(["batch_size", "seed"]):
        s = steps_to_target(run["step"], run[metric], target, interpolate)
        rows.append(
            {"batch_size": int(b), "seed": int(seed), "steps": s, "samples": s * b, "reached": not math.isnan(s)}
        )
    return pd.DataFrame(rows)


@dataclass
class StepsFit:
    """Fitted S(B) = s_min (1 + b_crit / B)."""

    s_min: float
    b_crit: float
    e_min: float
    b_20: float
    rmse_log: float
    n_points: int

    def steps(self, batch_size) -> np.ndarray:
        return self.s_min * (1 + self.b_crit / np.asarray(batch_size, dtype=float))


def fit_steps_model(batch_sizes, steps) -> StepsFit:
    """Least squares in log space of S(B) = S_min (1 + B_crit/B), parameters kept positive."""
    b = np.asarray(batch_sizes, dtype=float)
    s = np.asarray(steps, dtype=float)
    ok = np.isfinite(s) & (s > 0)
    b, s = b[ok], s[ok]
    if len(np.unique(b)) < 3:
        raise ValueError(f"the S(B) fit needs at least 3 batch sizes that reached the target, got {len(np.unique(b))}")
    design = np.column_stack([np.ones_like(b), 1 / b])
    (a0, c0), *_ = np.linalg.lstsq(design, s, rcond=None)
    s_min0 = max(a0, s.min() * 0.1)
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
    """Model-free 20% rule: the largest batch size before S first exceeds 1.2 x perfect scaling from the smallest.

    Perfect scaling from the smallest batch size B0 predicts S(B) = S(B0) B0 / B.
    """
    b = np.asarray(batch_sizes, dtype=float)
    s = np.asarray(steps, dtype=float)
    ok = np.isfinite(s)
    order = np.argsort(b[ok])
    b, s = b[ok][order], s[ok][order]
    if len(b) < 2:
        return math.nan
    within = s <= 1.2 * s[0] * b[0] / b
    last = np.argmin(within) - 1 if not within.all() else len(b) - 1
    return float(b[last])


def _fit_means(table: pd.DataFrame) -> tuple[StepsFit | None, float]:
    means = table[table["reached"]].groupby("batch_size")["steps"].mean()
    try:
        fit = fit_steps_model(means.index, means.values)
    except ValueError:
        fit = None
    return fit, empirical_b20(means.index, means.values)


def bootstrap_fit(table: pd.DataFrame, n_boot: int = 1000, level: float = 0.95, rng=None) -> pd.DataFrame:
    """Estimates and percentile intervals of S_min, B_crit, B_20 and the empirical B_20, resampling seeds.

    Seeds are resampled with replacement and the same resampled seeds are used at every batch size
    (runs of one seed are paired). Per batch size the mean steps of the runs that reached the target
    enter the fit; batch sizes with none are left out (and counted in n_excluded).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    seeds = np.sort(table["seed"].unique())
    fit, emp = _fit_means(table)
    reached_any = table.groupby("batch_size")["reached"].any()
    names = ["s_min", "b_crit", "b_20", "b_20_empirical"]
    estimate = dict(zip(names, [fit.s_min, fit.b_crit, fit.b_20, emp] if fit else [math.nan] * 3 + [emp]))
    draws = {k: [] for k in names}
    by_seed = {s: g for s, g in table.groupby("seed")}
    for _ in range(n_boot):
        sample = pd.concat([by_seed[s].assign(seed=i) for i, s in enumerate(rng.choice(seeds, len(seeds)))])
        f, e = _fit_means(sample)
        if f is not None:
            for k, v in zip(names, [f.s_min, f.b_crit, f.b_20, e]):
                draws[k].append(v)
    alpha = (1 - level) / 2
    rows = []
    for k in names:
        vals = np.asarray(draws[k], dtype=float)
        vals = vals[np.isfinite(vals)]
        low, high = (np.quantile(vals, [alpha, 1 - alpha]) if len(vals) else (math.nan, math.nan))
        rows.append(
            {
                "quantity": k,
                "estimate": estimate[k],
                "low": float(low),
                "high": float(high),
                "level": level,
                "n_boot_ok": int(len(vals)),
                "n_excluded": int((~reached_any).sum()),
                "rmse_log": fit.rmse_log if fit else math.nan,
            }
        )
    return pd.DataFrame(rows)
