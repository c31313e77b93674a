"""A study's critical batch size, three ways side by side: the S(B) fit, the 20% rule, and B_simple.

Every estimate carries a `flag` (batchlab.analysis.measured: '' when the runs measure it, else why not). The
gradient noise scale enters twice: at each checkpoint, and at the target (each measured run's
checkpoint closest to where it crossed the target), the one McCandlish et al. compare with B_crit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from batchlab.analysis import measured
from batchlab.analysis.cbs import bootstrap_fit, fit_steps_model, seed_mean_steps, steps_matrix, steps_table
from batchlab.config import StepsToTarget
from batchlab.analysis.resampling import percentile_interval, seed_bootstrap
from batchlab.analysis.targets import resolve_target

FIT_LABELS = {
    "s_min": ("S(B) fit (McCandlish)", "S_min: steps at infinite batch"),
    "b_crit": ("S(B) fit (McCandlish)", "B_crit = E_min / S_min"),
    "b_20": ("S(B) fit, 20% rule (Zhang)", "B_20 = B_crit / 5"),
    "b_20_empirical": ("model-free 20% rule (Zhang)", "largest B within 1.2x perfect scaling"),
}


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


def reached_sizes(steps: pd.DataFrame) -> np.ndarray:
    """Batch sizes where at least one run reached the target (those the S(B) fit uses)."""
    sizes, _, grid = steps_matrix(steps)
    return sizes[np.isfinite(seed_mean_steps(grid, np.arange(grid.shape[1])))]


def with_caps(steps: pd.DataFrame, curves: pd.DataFrame, s_min: float) -> pd.DataFrame:
    """Each run's last logged step (its cap, for a run that never reached the target), and whether it missed the
    target by construction: a cap below the fitted S_min, which no batch size can beat."""
    last = curves.groupby(["batch_size", "seed"])["step"].max().rename("last_step").reset_index()
    steps = steps.merge(last, on=["batch_size", "seed"], how="left")
    missed = ~steps["reached"].astype(bool)
    return steps.assign(cap_below_s_min=missed & (steps["last_step"] < s_min))


def analyse(
    curves: pd.DataFrame, noise: pd.DataFrame, spec: StepsToTarget, baseline: float = math.nan,
    target_runs: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-run steps-to-target, and one table of critical-batch-size estimates with intervals and flags.

    baseline: the data's constant-prediction loss (batchlab.analysis.targets), needed by a baseline_fraction target
    and recorded beside the target for the figures. target_runs: the train-to-target runs, whose rate check (when
    they have one) refits B_crit at another rate and flags it rate-limited when it moves (rate_check).
    """
    target = resolve_target(curves, spec.metric, spec.kind, spec.value, baseline)
    steps = steps_table(curves, spec.metric, target, spec.interpolate).assign(target=target, metric=spec.metric)
    fit = bootstrap_fit(steps, n_boot=spec.bootstrap, rng=np.random.default_rng(0))
    sizes = reached_sizes(steps)
    fit["method"] = fit["quantity"].map(lambda q: FIT_LABELS[q][0])
    fit["definition"] = fit["quantity"].map(lambda q: FIT_LABELS[q][1])
    fit["flag"] = [measured.flag(q, e, sizes, r) for q, e, r in zip(fit["quantity"], fit["estimate"], fit["rmse_log"])]
    steps = with_caps(steps, curves, float(fit.set_index("quantity")["estimate"].get("s_min", math.nan)))
    check, limited = rate_check(target_runs, float(fit.set_index("quantity")["estimate"].get("b_crit", math.nan)))
    if limited:
        on_fit = fit["quantity"].isin(["b_crit", "b_20"])
        fit.loc[on_fit, "flag"] = ["; ".join(filter(None, [f, limited])) for f in fit.loc[on_fit, "flag"]]
    rows = [fit, check] if len(check) else [fit]
    if not noise.empty:
        for fraction, group in noise.groupby("fraction"):
            values = group["b_simple"].dropna()
            rows.append(pd.DataFrame([{
                "quantity": f"b_simple@{fraction:g}",
                "estimate": float(values.median()) if len(values) else np.nan,
                "low": float(values.min()) if len(values) else np.nan,
                "high": float(values.max()) if len(values) else np.nan,
                "level": np.nan,
                "n_boot_ok": 0,
                "n_excluded": int(group["b_simple"].isna().sum()),
                "rmse_log": np.nan,
                "method": f"gradient noise scale ({group['method'].iloc[0]})",
                "definition": f"B_simple = tr(Sigma)/|G|^2 at {fraction:.0%} of training: median, min-max over runs",
                "flag": "",
            }]))
        rows.append(_b_simple_at_target(noise_at_crossing(noise, steps), spec.bootstrap))
    table = pd.concat(rows, ignore_index=True).assign(target=target, metric=spec.metric, baseline=baseline)
    return steps, table


def rate_check(target_runs: pd.DataFrame | None, b_crit: float) -> tuple[pd.DataFrame, str]:
    """B_crit refitted to a rate check's runs (the same seeds trained at another multiple of the rate) as a table
    row, and why the study's B_crit is rate-limited ('' when it is not, or there is no check).

    Rate-limited: both fits finite and more than RATE_LIMIT_FACTOR apart (batchlab.analysis.measured.rate_limited);
    with one rate for every batch size S(B) flattens where the rate binds, and B_crit then measures the rate."""
    if target_runs is None or "rate_check_steps" not in target_runs:
        return pd.DataFrame(), ""
    factor = float((target_runs["rate_check_base_lr"] / target_runs["base_lr"]).median())
    steps = pd.DataFrame({"batch_size": target_runs["batch_size"], "seed": target_runs["seed"],
                          "steps": target_runs["rate_check_steps"].astype(float)})
    steps["reached"] = np.isfinite(steps["steps"])
    sizes, _, grid = steps_matrix(steps)
    mean = seed_mean_steps(grid, np.arange(grid.shape[1]))
    reached = sizes[np.isfinite(mean)]
    try:
        fit = fit_steps_model(sizes, mean)
        estimate, rmse = fit.b_crit, fit.rmse_log
    except ValueError:
        estimate, rmse = math.nan, math.nan
    limited = ""
    if math.isfinite(b_crit) and b_crit > 0 and math.isfinite(estimate) and estimate > 0 \
            and measured.rate_limited({1.0: b_crit, factor: estimate}):
        limited = (f"rate-limited: refitted with the same seeds at {factor:g}x the rate, B_crit moves from {b_crit:.3g} "
                   f"to {estimate:.3g}, more than {measured.RATE_LIMIT_FACTOR:g}x: the fixed rate binds (McCandlish "
                   "et al. tune it per batch size)")
    row = {"quantity": "b_crit_rate_check", "estimate": estimate, "low": np.nan, "high": np.nan, "level": np.nan,
           "n_boot_ok": 0, "n_excluded": int((~steps["reached"]).sum()), "rmse_log": rmse,
           "method": f"S(B) fit at {factor:g}x the rate (rate check)",
           "definition": f"B_crit of the same seeds trained at {factor:g}x the study's rate ({len(reached)} batch sizes "
           "reached the target); the study's B_crit is rate-limited when the two differ by more than "
           f"{measured.RATE_LIMIT_FACTOR:g}x",
           "flag": measured.flag("b_crit", estimate, reached, rmse), "rate_limited": limited}
    return pd.DataFrame([row]), limited


def rate_limit_reason(table: pd.DataFrame) -> str:
    """The critical-batch table's rate-limit reason ('' when B_crit is not rate-limited or was not checked)."""
    if "rate_limited" not in table:
        return ""
    reasons = table.loc[table["quantity"] == "b_crit_rate_check", "rate_limited"].fillna("")
    return str(reasons.iloc[0]) if len(reasons) else ""


def _b_simple_at_target(at_crossing: pd.DataFrame, n_boot: int, level: float = 0.95) -> pd.DataFrame:
    """B_simple at the target: geometric mean over measured runs, percentile interval resampling their seeds, each
    draw widened by the runs' own estimator noise (estimator_noise)."""
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


RATE_COLUMNS = ["base_lr", "lr", "lr_candidates", "lr_choice", "lr_note", "tuning_trials", "tuning_trials_stopped",
                "tuning_steps_skipped"]


def tuned_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Per batch size of a rate-tuned train-to-target analysis: the rate its seeds trained at and how it was chosen
    (empty when the rate was not tuned)."""
    if "lr_tuned" not in runs or not runs["lr_tuned"].fillna(False).astype(bool).any():
        return pd.DataFrame(columns=["batch_size", *RATE_COLUMNS])
    return runs.groupby("batch_size", as_index=False)[RATE_COLUMNS].first()


ON_FINAL_LOSS = "tuned on final loss"  # a sweep's lr_rule: tuned, which B_crit does not count as tuned


@dataclass(frozen=True)
class RateProtocol:
    """How the runs behind B_crit set their learning rate: rule "tuned" (per batch size by steps to the target),
    ON_FINAL_LOSS, or the rate rule they trained under; the batch sizes whose tuned rate is not trusted; and why a
    fixed rate's B_crit is rate-limited ('' when a rate check did not find it so, or there was none)."""

    rule: str
    doubtful: tuple[int, ...] = ()
    rate_limited: str = ""

    @property
    def tuned(self) -> bool:
        return self.rule == "tuned"

    @property
    def text(self) -> str:
        if self.tuned:
            return "learning rate tuned per batch size by steps to the target"
        if self.rule == ON_FINAL_LOSS:
            return "learning rate tuned on final validation loss, not by steps to the target"
        return f"learning rate {self.rule}, not tuned per batch size"


def rate_protocol(runs: pd.DataFrame, rates: pd.DataFrame | None = None, critical: pd.DataFrame | None = None) -> RateProtocol:
    """How the runs behind B_crit set their rate, and the batch sizes whose tuned rate is not trusted (at the grid's
    edge, or no rate reached the target). rates: tuned_rates(runs), when already computed; critical: the
    critical-batch table, whose rate check may find a fixed rate's B_crit rate-limited."""
    rates = tuned_rates(runs) if rates is None else rates
    if rates.empty:
        rule = runs["lr_rule"].iloc[0] if "lr_rule" in runs and len(runs) else "fixed"
        limited = rate_limit_reason(critical) if critical is not None else ""
        return RateProtocol(ON_FINAL_LOSS if rule == "tuned" else str(rule), rate_limited=limited)
    doubtful = sorted(int(b) for b in rates.loc[rates["lr_note"].fillna("") != "", "batch_size"])
    return RateProtocol("tuned", tuple(doubtful))
