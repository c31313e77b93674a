"""A study's critical batch size, three ways side by side: the S(B) fit, the 20% rule, and B_simple."""

from __future__ import annotations

import numpy as np
import pandas as pd

from batchlab.cbs import bootstrap_fit, resolve_target, steps_table
from batchlab.config import StepsToTarget


def analyse(curves: pd.DataFrame, noise: pd.DataFrame, spec: StepsToTarget) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-run steps-to-target, and one table of critical-batch-size estimates with intervals."""
    target = resolve_target(curves, spec.metric, spec.kind, spec.value)
    steps = steps_table(curves, spec.metric, target, spec.interpolate).assign(target=target, metric=spec.metric)
    fit = bootstrap_fit(steps, n_boot=spec.bootstrap, rng=np.random.default_rng(0))
    labels = {
        "s_min": ("S(B) fit (McCandlish)", "S_min: steps at infinite batch"),
        "b_crit": ("S(B) fit (McCandlish)", "B_crit = E_min / S_min"),
        "b_20": ("S(B) fit, 20% rule (Zhang)", "B_20 = B_crit / 5"),
        "b_20_empirical": ("model-free 20% rule (Zhang)", "largest B within 1.2x perfect scaling"),
    }
    fit["method"] = fit["quantity"].map(lambda q: labels[q][0])
    fit["definition"] = fit["quantity"].map(lambda q: labels[q][1])
    rows = [fit]
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
            }]))
    table = pd.concat(rows, ignore_index=True).assign(target=target, metric=spec.metric)
    return steps, table
