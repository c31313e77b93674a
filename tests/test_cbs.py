"""Critical batch size: steps-to-target and the S(B) fit on cases with known answers."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from batchlab.analysis.cbs import bootstrap_fit, empirical_b20, fit_steps_model, steps_table, steps_to_target
from batchlab.analysis.targets import resolve_target
from reference_fits import reference_steps_fit

SIZES = 2 ** np.arange(11)  # 1 .. 1024
S_MIN, B_CRIT = 1000.0, 64.0


def synthetic_table(s_min=S_MIN, b_crit=B_CRIT, noise=0.05, seeds=5, seed=0) -> pd.DataFrame:
    """Steps from S(B) = s_min (1 + b_crit/B) with multiplicative log-normal noise, one row per run."""
    rng = np.random.default_rng(seed)
    rows = [
        {"batch_size": b, "seed": s, "steps": s_min * (1 + b_crit / b) * np.exp(noise * rng.normal()), "reached": True}
        for s in range(seeds) for b in SIZES
    ]
    return pd.DataFrame(rows)


def test_fit_recovers_known_model():
    """The noisy fit is the log-space least-squares optimum, found independently by a 1-D search over B_crit (rel 1e-6;
    a fit weighted in linear space moves B_crit by about 2%), and lies near the truth: the seed means' log noise is
    0.05/sqrt(5) = 2.2% per batch size, so S_min (set by the largest sizes) is within 3% and B_crit within 5%."""
    means = synthetic_table().groupby("batch_size")["steps"].mean()
    fit = fit_steps_model(means.index, means.values)
    s_min, b_crit = reference_steps_fit(means.index, means.values)
    assert fit.b_crit == pytest.approx(b_crit, rel=1e-6)
    assert fit.s_min == pytest.approx(s_min, rel=1e-6)
    assert fit.b_crit == pytest.approx(B_CRIT, rel=0.05)
    assert fit.s_min == pytest.approx(S_MIN, rel=0.03)
    # B_20 from Zhang's definition: where S(B) exceeds perfect scaling S_min B_crit / B by 20%
    b_20 = brentq(lambda b: s_min * (1 + b_crit / b) - 1.2 * s_min * b_crit / b, 1e-9, 1e9, xtol=1e-12, rtol=1e-14)
    assert fit.b_20 == pytest.approx(b_20, rel=1e-6)
    # E_min: the fewest samples, B S(B) as B -> 0
    assert fit.e_min == pytest.approx(1e-9 * s_min * (1 + b_crit / 1e-9), rel=1e-6)
    residuals = np.log(means.values) - np.log(s_min * (1 + b_crit / means.index.to_numpy()))
    assert fit.n_points == len(SIZES) and fit.rmse_log == pytest.approx(np.sqrt(np.mean(residuals**2)), rel=1e-6)


def test_fit_is_exact_on_noiseless_data_and_accepts_one_point_per_run():
    fit = fit_steps_model(SIZES, S_MIN * (1 + B_CRIT / SIZES))
    assert fit.s_min == pytest.approx(S_MIN, rel=1e-6) and fit.b_crit == pytest.approx(B_CRIT, rel=1e-6)
    assert fit.e_min == pytest.approx(64000.0, rel=1e-6) and fit.b_20 == pytest.approx(12.8, rel=1e-6)  # by hand
    assert fit.rmse_log < 1e-8
    table = synthetic_table()
    per_run = fit_steps_model(table["batch_size"], table["steps"])
    s_min, b_crit = reference_steps_fit(table["batch_size"], table["steps"])
    assert per_run.n_points == len(table) and per_run.b_crit == pytest.approx(b_crit, rel=1e-6)
    assert per_run.s_min == pytest.approx(s_min, rel=1e-6)


def test_bootstrap_interval_covers_truth():
    out = bootstrap_fit(synthetic_table(), n_boot=300, rng=np.random.default_rng(1)).set_index("quantity")
    assert out.index.tolist() == ["s_min", "b_crit", "b_20", "b_20_empirical"]
    assert out.loc["b_crit", "low"] <= B_CRIT <= out.loc["b_crit", "high"]
    assert out.loc["s_min", "low"] <= S_MIN <= out.loc["s_min", "high"]
    assert out.loc["b_crit", "low"] < out.loc["b_crit", "estimate"] < out.loc["b_crit", "high"]
    means = synthetic_table().groupby("batch_size")["steps"].mean()
    assert out.loc["b_crit", "estimate"] == pytest.approx(reference_steps_fit(means.index, means.values)[1], rel=1e-6)
    # B_20 = B_crit / 5 in every draw (Zhang's 20% rule solved under the model), so the ends scale with it
    assert out.loc["b_20", "estimate"] == pytest.approx(out.loc["b_crit", "estimate"] / 5)
    assert out.loc["b_20", "low"] == pytest.approx(out.loc["b_crit", "low"] / 5)
    assert (out["n_boot_ok"] == 300).all() and (out["n_excluded"] == 0).all()


def test_bootstrap_is_reproducible_and_excludes_unreached_batch_sizes():
    table = synthetic_table()
    table.loc[table["batch_size"] == 1024, ["steps", "reached"]] = [np.nan, False]
    a = bootstrap_fit(table, n_boot=50, rng=np.random.default_rng(7))
    b = bootstrap_fit(table, n_boot=50, rng=np.random.default_rng(7))
    pd.testing.assert_frame_equal(a, b)
    assert (a["n_excluded"] == 1).all()
    means = table[table["reached"]].groupby("batch_size")["steps"].mean()
    assert a.set_index("quantity").loc["b_crit", "estimate"] == pytest.approx(
        fit_steps_model(means.index, means.values).b_crit
    )


def test_bootstrap_resamples_seeds_paired_across_batch_sizes():
    """Each seed's runs share one factor across all batch sizes: resampling whole seeds keeps
    B_crit (a ratio within a seed) exact, while unpaired resampling would scatter it."""
    factors = {0: 0.8, 1: 1.0, 2: 1.3}
    table = pd.DataFrame(
        [{"batch_size": b, "seed": s, "steps": f * S_MIN * (1 + B_CRIT / b)} for s, f in factors.items() for b in SIZES]
    )
    out = bootstrap_fit(table, n_boot=100, rng=np.random.default_rng(0)).set_index("quantity")
    assert out.loc["b_crit", "low"] == pytest.approx(B_CRIT, rel=1e-5)
    assert out.loc["b_crit", "high"] == pytest.approx(B_CRIT, rel=1e-5)
    assert out.loc["s_min", "low"] < S_MIN < out.loc["s_min", "high"]


def test_empirical_b20_on_noiseless_model():
    # S(B) <= 1.2 S(B0) B0 / B with S = S_min (1 + B_crit/B)  <=>  B <= 1.2 B0 + B_crit / 5.
    for b0_index, b_crit in [(0, 64.0), (0, 300.0), (2, 64.0), (3, 1000.0)]:
        sizes = SIZES[b0_index:]
        steps = S_MIN * (1 + b_crit / sizes)
        bound = 1.2 * sizes[0] + b_crit / 5
        expected = sizes[sizes <= bound].max()
        assert empirical_b20(sizes, steps) == expected
    # by hand: B0 = 1, B_crit = 64: bound 14, so 8; B0 = 4: bound 17.6, so 16; B_crit = 300: bound 61.2, so 32
    assert empirical_b20(SIZES, S_MIN * (1 + 64 / SIZES)) == 8
    assert empirical_b20(SIZES[2:], S_MIN * (1 + 64 / SIZES[2:])) == 16


def test_empirical_b20_takes_the_largest_qualifying_size_and_skips_unreached():
    sizes = np.array([1, 2, 4, 8])
    perfect = 800.0 / sizes
    steps = perfect * np.array([1.0, 1.5, 1.1, 1.3])  # 2 breaks the rule, 8 is above 1.2, 4 is within
    assert empirical_b20(sizes, steps) == 4
    assert empirical_b20(sizes, np.array([np.nan, 400.0, 200.0, 100.0])) == 8  # B0 becomes 2
    assert math.isnan(empirical_b20([1, 2], [np.nan, 3.0]))
    assert math.isnan(empirical_b20([1, 2], [np.nan, np.nan]))


def test_steps_to_target_interpolates_in_log_step():
    steps = np.array([1, 10, 100, 1000])
    metric = 1.0 / steps
    assert steps_to_target(steps, metric, 0.01) == pytest.approx(100)
    # between 10 (0.1) and 100 (0.01): t = (0.1 - 0.055) / 0.09 = 0.5 -> 10 ** 1.5
    assert steps_to_target(steps, metric, 0.055) == pytest.approx(10**1.5)
    # t = (0.1 - 0.028) / 0.09 = 0.8 -> 10 ** 1.8
    assert steps_to_target(steps, metric, 0.028) == pytest.approx(10**1.8)
    assert steps_to_target(steps, metric, 0.055, interpolate=False) == 100
    assert steps_to_target(steps, metric, 2.0) == 1  # reached at the first logged point
    assert math.isnan(steps_to_target(steps, metric, 1e-6))


def test_steps_to_target_from_step_zero_and_after_nan():
    # log(0) is undefined: linear in step between 0 (1.0) and 10 (0.5): target 0.75 is half way
    assert steps_to_target([0, 10, 100], [1.0, 0.5, 0.1], 0.75) == pytest.approx(5)
    assert steps_to_target([1, 10, 100], [np.nan, np.nan, 0.1], 0.5) == 100
    assert math.isnan(steps_to_target([1, 10], [np.nan, np.inf], 0.5))


def test_resolve_target_fraction_of_best_improvement():
    curves = pd.DataFrame(
        {
            "batch_size": [1, 1, 1, 2, 2, 2],
            "seed": [0, 0, 0, 0, 0, 0],
            "step": [1, 3, 5, 5, 1, 3],  # rows of run 2 out of order on purpose
            "val_loss": [1.0, 0.4, 0.2, 0.5, 0.8, 0.6],
        }
    )
    # initial = mean(1.0, 0.8) = 0.9; best final = min(0.2, 0.5) = 0.2; half the improvement: 0.9 - 0.5 * 0.7 = 0.55
    assert resolve_target(curves, "val_loss", "fraction", 0.5) == pytest.approx(0.55)
    assert resolve_target(curves, "val_loss", "fraction", 1.0) == pytest.approx(0.2)
    assert resolve_target(curves, "val_loss", "value", 0.3) == 0.3
    with pytest.raises(ValueError, match="target kind must be one of"):
        resolve_target(curves, "val_loss", "relative", 0.5)
    table = steps_table(curves, "val_loss", 0.3)
    assert table["reached"].tolist() == [True, False]
    # run 1: between step 3 (0.4) and 5 (0.2), t = 0.5 -> sqrt(15)
    assert table.loc[0, "steps"] == pytest.approx(15**0.5) and math.isnan(table.loc[1, "steps"])
    assert table.loc[0, "samples"] == pytest.approx(15**0.5)


def test_fit_needs_three_batch_sizes():
    with pytest.raises(ValueError, match="at least 3 distinct batch sizes"):
        fit_steps_model([1, 2, 4], [10.0, np.nan, 3.0])
    with pytest.raises(ValueError, match="at least 3 distinct batch sizes"):
        fit_steps_model([1, 1, 2, 2], [10.0, 11.0, 6.0, 5.0])


def test_resamples_whose_fit_fails_count_against_the_interval():
    """Seed 0 reached the target at 2 batch sizes only, seed 1 at all 5: the resample {0, 0}, a quarter of the
    draws, cannot be fitted. Leaving it out made the interval of B_crit the values of {1, 1} and {0, 1}, the
    estimate; a quarter of the draws without a value leaves no 95% interval, and n_boot_ok says how many had one."""
    sizes = [1, 4, 16, 64, 256]
    rows = [{"batch_size": b, "seed": s, "steps": 100.0 * (1 + (30.0 if s else 60.0) / b), "reached": s == 1 or b <= 4}
            for b in sizes for s in (0, 1)]
    out = bootstrap_fit(pd.DataFrame(rows), n_boot=400).set_index("quantity")
    assert 0.6 * 400 < out.loc["b_crit", "n_boot_ok"] < 0.9 * 400
    assert math.isnan(out.loc["b_crit", "low"]) and math.isnan(out.loc["b_crit", "high"])
    assert math.isfinite(out.loc["b_crit", "estimate"])
