"""Which runs count as trained, for the claims that speak about trained models.

A run that never beat the data's baseline (the loss of the best constant prediction) has no minimum, no
meaningful sharpness and no generalization gap to compare; its latents encode little. Sharpness also needs
its eigenvalue to have converged. Claims about reconstruction loss keep every run: they are the paper's
own fixed-epoch design.
"""

from __future__ import annotations

import math

import pandas as pd

TRAINED_METRICS = (
    "distance_from_init", "sharpness", "generalization_gap", "accuracy_gap",
    "svm_roc_auc_mean", "svm_accuracy_mean", "svm_r2_mean", "svm_mae_mean", "gradient_spread",
)


def trained_mask(table: pd.DataFrame, metric: str, baseline: float) -> pd.Series:
    """Rows of runs that count for `metric`: every run for the loss claims; else runs whose final validation
    loss beat the baseline (when the data define one), with a converged eigenvalue for sharpness."""
    keep = pd.Series(True, index=table.index)
    if metric not in TRAINED_METRICS:
        return keep
    if math.isfinite(baseline) and "val_loss" in table:
        keep &= table["val_loss"].astype(float) < baseline
    if metric == "sharpness" and "sharpness_converged" in table:
        keep &= table["sharpness_converged"].fillna(False).astype(bool)
    return keep


def left_out(table: pd.DataFrame, keep: pd.Series, metric: str, baseline: float) -> str:
    """The runs `trained_mask` left out, named by batch size, and why ('' when none)."""
    dropped = table.loc[~keep]
    if dropped.empty:
        return ""
    counts = dropped.groupby("batch_size").size()
    sizes = ", ".join(f"{b} ({n})" for b, n in counts.items())
    why = f"final validation loss not below the data's baseline {baseline:.4g}"
    if metric == "sharpness":
        why += ", or an eigenvalue that did not converge"
    return f"{len(dropped)} runs left out as not trained ({why}): batch size (runs) {sizes}"
