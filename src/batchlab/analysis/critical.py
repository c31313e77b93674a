"""A study's critical batch size, three ways side by side: the S(B) fit, the 20% rule, and B_simple.

Every estimate carries a `flag` (batchlab.analysis.measured: '' when the runs measure it, else why not). The
gradient noise scale enters twice: at each checkpoint, and at the target (each measured run's
checkpoint closest to where it crossed the target), the one McCandlish et al. compare with B_crit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from batchlab.analysis import measured
from batchlab.analysis.at_target import b_simple_at_target, noise_at_crossing
from batchlab.analysis.cbs import bootstrap_fit, seed_mean_steps, steps_matrix, steps_table
from batchlab.config import StepsToTarget
from batchlab.analysis.rates import rate_check
from batchlab.analysis.targets import resolve_target

FIT_LABELS = {
    "s_min": ("S(B) fit (McCandlish)", "S_min: steps at infinite batch"),
    "b_crit": ("S(B) fit (McCandlish)", "B_crit = E_min / S_min"),
    "b_20": ("S(B) fit, 20% rule (Zhang)", "B_20 = B_crit / 5"),
    "b_20_empirical": ("model-free 20% rule (Zhang)", "largest B within 1.2x perfect scaling"),
}


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
        rows.append(b_simple_at_target(noise_at_crossing(noise, steps), spec.bootstrap))
    table = pd.concat(rows, ignore_index=True).assign(target=target, metric=spec.metric, baseline=baseline)
    return steps, table
