"""The equal-steps control (Hoffer et al. 2017): is the fixed-data sweep's small-batch advantage gone when every
batch size takes the same number of optimizer steps?

Two trend tests with batch sizes as the units (batchlab.analysis.trend), at the batch sizes the two arms share:
the sweep's, where the advantage must be shown, and the arm's, where it must be refuted (an equivalence test, or a
significant trend the other way). Both must hold for "replicated" (an intersection-union test: its error rate is at
most that of either part); an advantage that stays significant at equal steps is "not replicated".

Why not "the advantage shrinks": at equal steps the large batches see more samples than in the sweep and the small
ones fewer, so while losses still fall with training a smaller advantage follows from the design alone. Whether it
is *gone* is what separates Hoffer et al. (the updates explain it) from an effect of the batch size itself.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from batchlab.analysis.trend import HIGHER_IS_BETTER, MIN_TREND_SIZES, trend_test


def advantage_direction(metric: str) -> str:
    """The trend a small-batch advantage gives `metric`: a loss or gap rises with batch size, an accuracy falls."""
    return "decreases_with_batch_size" if any(k in metric for k in HIGHER_IS_BETTER) else "increases_with_batch_size"


def trained_sizes(arm: pd.DataFrame, baseline: float) -> tuple[list[int], list[int]]:
    """The arm's batch sizes whose runs all beat the data's baseline, and the others (all count when it has none)."""
    sizes = sorted(int(b) for b in arm["batch_size"].unique())
    if not math.isfinite(baseline) or "val_loss" not in arm:
        return sizes, []
    beat = arm.assign(beat=arm["val_loss"].astype(float) < baseline).groupby("batch_size")["beat"].all()
    return [b for b in sizes if beat[b]], [b for b in sizes if not beat[b]]


def equal_steps_test(
    sweep: pd.DataFrame, arm: pd.DataFrame, metric: str, min_effect: float = 0.5, alpha: float = 0.05,
    n_perm: int = 20000, level: float = 0.95, baseline: float = math.nan,
) -> dict:
    """The claim "the small-batch advantage vanishes at equal steps" on the sweep's runs and the arm's.

    sweep, arm: run tables (one row per batch size and seed). Only arm batch sizes whose runs all beat `baseline`
    count, and the sweep is taken at the same batch sizes. The estimate is ρ at equal steps; the detail gives ρ at
    equal epochs, both tests' p-values and the batch sizes that trained.
    """
    expect = advantage_direction(metric)
    kept, untrained = trained_sizes(arm, baseline)
    steps_runs = arm[arm["batch_size"].isin(kept)]
    epochs_runs = sweep[sweep["batch_size"].isin(kept)]
    epochs = trend_test(epochs_runs, "batch_size", metric, expect, min_effect, alpha, n_perm, level)
    steps = trend_test(steps_runs, "batch_size", metric, expect, min_effect, alpha, n_perm, level)
    gone = steps["verdict"] == "not replicated"
    if len(kept) < MIN_TREND_SIZES:
        verdict = "inconclusive"
        reason = f"{len(kept)} batch sizes of the arm trained; the test needs {MIN_TREND_SIZES}"
    elif steps["verdict"] == "replicated":
        verdict, reason = "not replicated", "the small-batch advantage remains at equal steps"
    elif epochs["verdict"] == "replicated" and gone:
        verdict, reason = "replicated", "an advantage at equal epochs, refuted at equal steps"
    elif epochs["verdict"] != "replicated":
        verdict, reason = "inconclusive", "no small-batch advantage shown at equal epochs, so none to vanish"
    else:
        verdict, reason = "inconclusive", "the advantage at equal steps is neither shown nor refuted"
    trained_text = ", ".join(map(str, kept)) or "none"
    untrained_text = f"; not below the baseline {baseline:.4g}: {', '.join(map(str, untrained))}" if untrained else ""
    steps_per_run = sorted(int(s) for s in arm["steps"].unique()) if "steps" in arm else []
    return {
        "statistic": "equal_steps_rho",
        "estimate": steps["estimate"],
        "low": steps["low"],
        "high": steps["high"],
        "level": level,
        "n_boot": 0,
        "n_x": len(kept),
        "n_units": steps["n_units"],
        "n_excluded_runs": int(len(arm) - len(steps_runs)) + steps["n_excluded_runs"],
        "at_smallest": steps["at_smallest"],
        "at_largest": steps["at_largest"],
        # intersection-union: "replicated" needs both parts, so its p-value is the larger of theirs
        "p_value": float(np.nanmax([epochs["p_value"], steps["p_refute"]])),
        "p_refute": steps["p_value"],
        "min_effect": min_effect,
        "interval_kind": steps["interval_kind"].replace("Fisher z", "Fisher z at equal steps"),
        "detail": f"{reason}. Equal epochs: ρ = {epochs['estimate']:.2f}, p = {epochs['p_value']:.3g} for the "
        f"advantage; equal steps ({'/'.join(map(str, steps_per_run)) or '?'} updates per run): ρ = "
        f"{steps['estimate']:.2f}, p = {steps['p_value']:.3g} for the advantage, {steps['p_refute']:.3g} against it "
        f"(the opposite trend or equivalence, |ρ| < {min_effect:g}); batch sizes of the arm that beat the data's "
        f"baseline: {trained_text}{untrained_text}",
        "verdict": verdict,
    }
