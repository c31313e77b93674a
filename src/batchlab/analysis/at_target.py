"""B_simple at the target: each measured run's gradient noise scale where it crossed the target, pooled over runs
with an interval that resamples the seeds and carries each run's own estimator noise (its jackknife over the
examples measured, batchlab.measure.jackknife), which the seeds cannot show: every run is measured on the same
examples. McCandlish et al. compare this B_simple with B_crit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from batchlab.analysis.resampling import percentile_interval, seed_bootstrap


def noise_at_crossing(noise: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """For every run with gradient statistics that reached the target, its checkpoint closest to the crossing.

    Closest in log(step), step 0 counting as step 1. The initial weights depend on the seed alone and are
    measured in one cell, so that row serves every batch size of its seed. One row per run: batch_size,
    seed, crossing (steps to target), fraction and step of the checkpoint, b_simple, eval_loss (when
    measured), b_simple_log_se (its jackknife over the examples, NaN where not measured), eval_samples and
    step_factor, how many times apart the checkpoint and the crossing lie.
    """
    columns = ["batch_size", "seed", "crossing", "fraction", "step", "b_simple", "b_simple_log_se", "eval_samples",
               "eval_loss", "step_factor"]
    if noise.empty or "b_simple" not in noise:
        return pd.DataFrame(columns=columns)
    init = noise[noise["fraction"] == 0].drop_duplicates("seed").set_index("seed")
    reached = steps[steps["reached"].astype(bool)].set_index(["batch_size", "seed"])["steps"]
    rows = []
    for (b, seed), own in noise[noise["fraction"] > 0].groupby(["batch_size", "seed"]):
        if (b, seed) not in reached.index:
            continue
        candidates = pd.concat([init.loc[[seed]].reset_index() if seed in init.index else None, own])
        crossing = float(reached.loc[(b, seed)])
        gap = np.abs(np.log(np.maximum(candidates["step"].to_numpy(dtype=float), 1)) - math.log(max(crossing, 1)))
        best = candidates.iloc[int(np.argmin(gap))]
        rows.append({"batch_size": int(b), "seed": int(seed), "crossing": crossing, "fraction": float(best["fraction"]),
                     "step": int(best["step"]), "b_simple": float(best["b_simple"]),
                     "b_simple_log_se": float(best.get("b_simple_log_se", math.nan)),
                     "eval_samples": float(best.get("eval_samples", math.nan)),
                     "eval_loss": float(best.get("eval_loss", math.nan)), "step_factor": float(math.exp(gap.min()))})
    return pd.DataFrame(rows, columns=columns)


def geometric_mean(values) -> float:
    """Geometric mean of the finite positive values (NaN if none): B_simple varies by factors."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else math.nan


def b_simple_at_target(at_crossing: pd.DataFrame, n_boot: int, level: float = 0.95) -> pd.DataFrame:
    """B_simple at the target: geometric mean over measured runs, percentile interval resampling their seeds, each
    draw widened by the runs' own estimator noise (with_estimator_noise)."""
    seeds = sorted(at_crossing["seed"].unique())
    runs = [seed_runs(at_crossing, s) for s in seeds]

    def pooled(columns: np.ndarray) -> tuple[float, float]:
        if not len(columns):
            return math.nan, math.nan
        return geometric_mean(np.concatenate([runs[c][0] for c in columns])), estimator_variance(runs, columns)

    point, draws = seed_bootstrap(pooled, len(seeds), n_boot)
    values = with_estimator_noise([d[0] for d in draws], [d[1] for d in draws])
    # a resample of seeds none of whose runs has a B_simple at the target has no value to miss: left out
    low, high = percentile_interval(values, level, [False] * len(values))
    factor = geometric_mean(at_crossing["step_factor"])
    return pd.DataFrame([{
        "quantity": "b_simple_at_target",
        "estimate": math.nan if point is None else point[0],
        "low": low,
        "high": high,
        "level": level,
        "n_boot": n_boot,
        "n_boot_ok": int(np.isfinite(values).sum()) if len(values) else 0,
        "n_excluded": int(at_crossing["b_simple"].isna().sum()),
        "rmse_log": np.nan,
        "method": "gradient noise scale at the target (McCandlish)",
        "definition": f"B_simple at each run's checkpoint closest to its crossing of the target "
        f"({len(at_crossing)} runs, checkpoints {factor:.2g}x from the crossings on average): geometric mean; "
        + estimator_text(at_crossing),
        "flag": "" if len(at_crossing) else "no run with gradient statistics reached the target",
    }])


def seed_runs(at_crossing: pd.DataFrame, seed) -> tuple[np.ndarray, np.ndarray]:
    """A seed's runs with a B_simple at the target: the values and their jackknife SEs of log B_simple (0 where
    not measured: the two-batch estimator, or a jackknife that was unstable, counted by estimator_text)."""
    own = at_crossing[(at_crossing["seed"] == seed) & np.isfinite(at_crossing["b_simple"].astype(float))]
    se = own["b_simple_log_se"].to_numpy(dtype=float) if "b_simple_log_se" in own else np.zeros(len(own))
    return own["b_simple"].to_numpy(dtype=float), np.nan_to_num(se, nan=0.0)


def estimator_variance(runs: list[tuple[np.ndarray, np.ndarray]], columns: np.ndarray) -> float:
    """Variance of the log geometric mean over the resampled seeds' runs that comes from each run's own estimator
    noise: a seed drawn c times repeats its runs' errors, adding c^2 se^2, over M runs in all (NaN without runs)."""
    counts = np.bincount(columns, minlength=len(runs))
    total = sum(c * len(values) for c, (values, _) in zip(counts, runs))
    var = sum(c * c * float(np.sum(se**2)) for c, (_, se) in zip(counts, runs))
    return var / total**2 if total else math.nan


def crossed_estimator_variance(se: np.ndarray, finite: np.ndarray, row_counts: np.ndarray,
                               col_counts: np.ndarray) -> np.ndarray:
    """estimator_variance for draws of batch sizes crossed with seeds: a run (a [batch size, seed] cell) drawn
    n_row x n_col times repeats its estimator error, adding (n_row n_col)^2 se^2 over M drawn runs (NaN without runs)."""
    finite = np.asarray(finite, dtype=float)
    se2 = np.where(finite > 0, np.nan_to_num(np.asarray(se, dtype=float), nan=0.0) ** 2, 0.0)
    total = np.einsum("dr,rc,dc->d", row_counts, finite, col_counts)
    var = np.einsum("dr,rc,dc->d", row_counts**2, se2, col_counts**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, var / total**2, np.nan)


def with_estimator_noise(values, variances, rng: np.random.Generator | None = None) -> np.ndarray:
    """Each bootstrap draw of a geometric mean (or a ratio of one) times exp(N(0, variance)): the seeds' spread
    convolved with the estimator's, which the seeds cannot show (every run is measured on the same examples)."""
    values = np.asarray(values, dtype=float)
    sd = np.sqrt(np.nan_to_num(np.asarray(variances, dtype=float), nan=0.0))
    rng = np.random.default_rng(1) if rng is None else rng
    return values * np.exp(rng.standard_normal(len(values)) * sd)


def estimator_text(at_crossing: pd.DataFrame) -> str:
    """How the estimator noise of B_simple entered the interval, in words."""
    defined = at_crossing[np.isfinite(at_crossing["b_simple"].astype(float))]
    se = defined["b_simple_log_se"].to_numpy(dtype=float) if "b_simple_log_se" in defined else np.full(len(defined), np.nan)
    if not len(defined):
        return "no estimator noise to carry"
    samples = defined["eval_samples"].dropna() if "eval_samples" in defined else pd.Series(dtype=float)
    on = f"{int(samples.min())}" if len(samples) and samples.min() == samples.max() else (
        f"{int(samples.min())}-{int(samples.max())}" if len(samples) else "an unrecorded number of")
    text = (f"measured on {on} examples; each run's estimator noise (jackknife over them, SE of log B_simple "
            f"{np.nanmedian(se):.2g} median) is in the interval" if np.isfinite(se).any() else
            f"measured on {on} examples; their estimator noise is not in the interval (no jackknife)")
    missing = int((~np.isfinite(se)).sum())
    if missing and np.isfinite(se).any():
        text += f", except {missing} run{'s' if missing > 1 else ''} without a stable jackknife"
    return text
