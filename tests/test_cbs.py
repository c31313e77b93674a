"""Critical batch size: steps-to-target and the S(B) fit on cases with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.cbs import bootstrap_fit, empirical_b20, fit_steps_model, resolve_target, steps_table, steps_to_target

SIZES = 2 ** np.arange(11)


def synthetic_table(s_min=1000.0, b_crit=64.0, noise=0.05, seeds=5, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"batch_size": b, "seed": s, "steps": s_min * (1 + b_crit / b) * np.exp(noise * rng.normal()), "reached": True}
        for s in range(seeds) for b in SIZES
    ]
    return pd.DataFrame(rows)


def test_fit_recovers_known_model():
    table = synthetic_table()
    means = table.groupby("batch_size")["steps"].mean()
    fit = fit_steps_model(means.index, means.values)
    assert fit.b_crit == pytest.approx(64, rel=0.1)
    assert fit.s_min == pytest.approx(1000, rel=0.1)
    assert fit.b_20 == pytest.approx(fit.b_crit / 5)
    assert fit.e_min == pytest.approx(fit.s_min * fit.b_crit)


def test_bootstrap_interval_covers_truth():
    out = bootstrap_fit(synthetic_table(), n_boot=300, rng=np.random.default_rng(1)).set_index("quantity")
    assert out.loc["b_crit", "low"] <= 64 <= out.loc["b_crit", "high"]
    assert out.loc["b_crit", "low"] < out.loc["b_crit", "estimate"] < out.loc["b_crit", "high"]
    assert out.loc["s_min", "n_boot_ok"] == 300


def test_empirical_b20_on_noiseless_model():
    steps = 1000 * (1 + 64 / SIZES)
    # S(B) <= 1.2 S(1) / B  <=>  B <= 0.2 * (1 + 64) = 13 (from the smallest batch size 1): largest power of 2 is 8
    assert empirical_b20(SIZES, steps) == 8


def test_steps_to_target_interpolates_in_log_step():
    steps = np.array([1, 10, 100, 1000])
    metric = 1.0 / steps
    assert steps_to_target(steps, metric, 0.01) == pytest.approx(100)
    # between 10 (0.1) and 100 (0.01): t = (0.1 - 0.055) / 0.09 = 0.5 -> 10 ** 1.5
    assert steps_to_target(steps, metric, 0.055) == pytest.approx(10**1.5)
    assert steps_to_target(steps, metric, 0.055, interpolate=False) == 100
    assert math.isnan(steps_to_target(steps, metric, 1e-6))


def test_resolve_target_fraction_of_best_improvement():
    curves = pd.DataFrame(
        {"batch_size": [1, 1, 2, 2], "seed": [0, 0, 0, 0], "step": [1, 5, 1, 5], "val_loss": [1.0, 0.2, 0.8, 0.5]}
    )
    # initial = mean(1.0, 0.8) = 0.9; best final = 0.2; half of the improvement: 0.9 - 0.5 * 0.7 = 0.55
    assert resolve_target(curves, "val_loss", "fraction", 0.5) == pytest.approx(0.55)
    assert resolve_target(curves, "val_loss", "value", 0.3) == 0.3
    table = steps_table(curves, "val_loss", 0.3)
    assert table["reached"].tolist() == [True, False]


def test_fit_needs_three_batch_sizes():
    with pytest.raises(ValueError, match="at least 3 batch sizes"):
        fit_steps_model([1, 2, 4], [10.0, np.nan, 3.0])
