"""The critical-batch table's B_simple rows and the S(B) fit, on noiseless inputs whose answers are worked by hand,
and invariants that hold for any input (hypothesis)."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from batchlab.analysis.cbs import bootstrap_fit, fit_steps_model
from batchlab.analysis.at_target import b_simple_at_target, geometric_mean, noise_at_crossing
from batchlab.analysis.critical import analyse
from batchlab.config import StepsToTarget
from reference_fits import reference_steps_fit

PROPERTY = settings(max_examples=15, deadline=None, derandomize=True)
SIZES = 2.0 ** np.arange(11)


def test_geometric_mean_keeps_only_finite_positive_values():
    assert geometric_mean([2.0, 8.0]) == pytest.approx(4.0, rel=1e-12)
    assert geometric_mean([4.0, 0.0, -1.0, np.inf, 9.0, np.nan]) == pytest.approx(6.0, rel=1e-12)
    assert geometric_mean([1e-3, 1e3, 5.0]) == pytest.approx(5.0 ** (1 / 3), rel=1e-12)
    assert math.isnan(geometric_mean([0.0, -2.0, np.nan]))


def test_the_checkpoint_closest_in_log_step_to_each_crossing():
    """Crossing at 100: checkpoints 30 (log gap 1.20) and 300 (1.10): 300, 3x away. Crossing at 2: the initial weights
    (step 0 counts as 1, gap log 2) beat 30 (log 15): the seed's init row, 2x away. A run that never reached: no row."""
    noise = pd.DataFrame({
        "batch_size": [1, 4, 4, 8, 8, 16],
        "seed": [0, 4, 4, 0, 0, 0],
        "fraction": [0.0, 0.5, 1.0, 0.5, 1.0, 0.5],
        "step": [0, 30, 300, 30, 300, 50],
        "b_simple": [7.0, 11.0, 13.0, 17.0, 19.0, 23.0],
    })
    steps = pd.DataFrame({"batch_size": [4, 8, 16], "seed": [4, 0, 0], "steps": [100.0, 2.0, np.nan],
                          "reached": [True, True, False]})
    out = noise_at_crossing(noise, steps).set_index(["batch_size", "seed"])
    assert sorted(out.index) == [(4, 4), (8, 0)]
    assert out.loc[(4, 4), "step"] == 300 and out.loc[(4, 4), "b_simple"] == 13.0
    assert out.loc[(4, 4), "step_factor"] == pytest.approx(3.0, rel=1e-12)
    assert out.loc[(8, 0), "step"] == 0 and out.loc[(8, 0), "b_simple"] == 7.0 and out.loc[(8, 0), "fraction"] == 0.0
    assert out.loc[(8, 0), "step_factor"] == pytest.approx(2.0, rel=1e-12)
    assert (out["crossing"].to_numpy() == [100.0, 2.0]).all()


def at_crossing(values_by_seed: dict, factor: float = 2.0) -> pd.DataFrame:
    rows = [{"batch_size": 2**k, "seed": s, "b_simple": v, "step_factor": factor}
            for s, values in values_by_seed.items() for k, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["batch_size", "seed", "b_simple", "step_factor"])


def test_b_simple_at_target_is_the_geometric_mean_and_its_seed_interval_spans_the_seeds():
    """Seed 0 measures 10 at both batch sizes, seed 1 measures 1000: the estimate is 100. Resampling 2 seeds gives
    {0, 0} (10) and {1, 1} (1000) a quarter of the time each, over the 2.5% a 95% interval leaves in a tail."""
    row = b_simple_at_target(at_crossing({0: [10.0, 10.0], 1: [1000.0, 1000.0]}), n_boot=400).iloc[0]
    assert row["quantity"] == "b_simple_at_target" and row["flag"] == ""
    assert row["estimate"] == pytest.approx(100.0, rel=1e-9)
    assert row["low"] == pytest.approx(10.0, rel=1e-9) and row["high"] == pytest.approx(1000.0, rel=1e-9)
    assert row["level"] == 0.95 and row["n_boot"] == 400 and row["n_boot_ok"] == 400 and row["n_excluded"] == 0
    assert "(4 runs, checkpoints 2x from the crossings on average)" in row["definition"]


def test_b_simple_at_target_pools_runs_not_seed_means_and_leaves_out_seeds_without_a_value():
    """Seed 0: 1, 100, 100; seed 1: 10; seed 2 none. Pooled over the runs the estimate is (1 100 100 10)^(1/4) =
    10^(5/4) (the seeds' own means, 10^(4/3) and 10, would give 10^(7/6)). A resample of seed 2 alone has no value and
    is left out, not counted against the interval; those of seed 1 (and 2) give 10 and those of seed 0 (and 2) give
    10^(4/3), each 7/27 of the draws: the ends of the interval."""
    row = b_simple_at_target(at_crossing({0: [1.0, 100.0, 100.0], 1: [10.0, np.nan], 2: [np.nan]}), n_boot=300).iloc[0]
    assert row["estimate"] == pytest.approx(10 ** (5 / 4), rel=1e-9)
    assert row["n_excluded"] == 2
    assert 0 < 300 - row["n_boot_ok"] < 30  # {2, 2, 2} is 1/27 of the draws
    assert row["low"] == pytest.approx(10.0, rel=1e-9) and row["high"] == pytest.approx(10 ** (4 / 3), rel=1e-9)


def test_b_simple_at_target_without_runs_or_with_one_seed():
    empty = b_simple_at_target(at_crossing({}), n_boot=50).iloc[0]
    assert math.isnan(empty["estimate"]) and empty["flag"] == "no run with gradient statistics reached the target"
    one = b_simple_at_target(at_crossing({5: [4.0, 16.0]}), n_boot=50).iloc[0]
    assert one["estimate"] == pytest.approx(8.0, rel=1e-12) and math.isnan(one["low"]) and one["n_boot_ok"] == 0


def noiseless_study(s_min=100.0, b_crit=8.0, sizes=(1, 2, 4, 8)):
    """Curves val_loss = S(B) / step logged at every step, so each run reaches 1.0 exactly at S(B) = s_min (1 + b_crit/B),
    and gradient statistics at three checkpoints: init (step 0), fraction 0.5 at 2 S(B) and fraction 1 at 10 S(B)."""
    curves, noise = [], []
    b_at_half = {0: 10.0, 1: 1000.0}
    b_at_end = {(1, 0): 1.0, (2, 0): 2.0, (4, 0): 3.0, (8, 0): np.nan, (1, 1): 4.0, (2, 1): 5.0, (4, 1): 100.0, (8, 1): 6.0}
    for seed in (0, 1):
        noise.append({"batch_size": 1, "seed": seed, "fraction": 0.0, "step": 0, "b_simple": 7.0 + 2 * seed})
        for b in sizes:
            s = s_min * (1 + b_crit / b)
            step = np.arange(1, int(12 * s) + 1)
            curves.append(pd.DataFrame({"batch_size": b, "seed": seed, "step": step, "val_loss": s / step}))
            noise.append({"batch_size": b, "seed": seed, "fraction": 0.5, "step": int(2 * s), "b_simple": b_at_half[seed]})
            noise.append({"batch_size": b, "seed": seed, "fraction": 1.0, "step": int(10 * s), "b_simple": b_at_end[(b, seed)]})
    noise = pd.DataFrame(noise).assign(method="per_example", eval_loss=0.5)
    return pd.concat(curves, ignore_index=True), noise


def test_analyse_on_a_noiseless_study_gives_every_row_its_hand_worked_value():
    curves, noise = noiseless_study()
    steps, table = analyse(curves, noise, StepsToTarget(kind="value", value=1.0, bootstrap=200))
    assert steps["steps"].tolist() == pytest.approx([900.0, 900.0, 500.0, 500.0, 300.0, 300.0, 200.0, 200.0], rel=1e-12)
    rows = table.set_index("quantity")
    assert rows.loc["s_min", "estimate"] == pytest.approx(100.0, rel=1e-6)
    assert rows.loc["b_crit", "estimate"] == pytest.approx(8.0, rel=1e-6)
    assert rows.loc["b_crit", "low"] == pytest.approx(8.0, rel=1e-6) and rows.loc["b_crit", "high"] == pytest.approx(8.0, rel=1e-6)
    assert rows.loc["b_20", "estimate"] == pytest.approx(1.6, rel=1e-6)
    # perfect scaling from B0 = 1 (900 steps): 500 <= 1.2 x 450 at B = 2, 300 > 1.2 x 225 at B = 4
    assert rows.loc["b_20_empirical", "estimate"] == 2.0
    # initial weights: seeds 7 and 9
    assert tuple(rows.loc["b_simple@0", ["estimate", "low", "high", "n_excluded"]]) == (8.0, 7.0, 9.0, 0)
    # half way: 10 at seed 0's four runs, 1000 at seed 1's: the median is the mean of the middle two, 505
    assert tuple(rows.loc["b_simple@0.5", ["estimate", "low", "high"]]) == (505.0, 10.0, 1000.0)
    # the end: 1, 2, 3, 4, 5, 6, 100 and one not measured: median 4 (the mean would be 17.3)
    assert tuple(rows.loc["b_simple@1", ["estimate", "low", "high", "n_excluded"]]) == (4.0, 1.0, 100.0, 1)
    assert rows.loc["b_simple@1", "method"] == "gradient noise scale (per_example)"
    # at the target every run's closest checkpoint is fraction 0.5 (2x from its crossing): 10 and 1000, mean 100
    target = rows.loc["b_simple_at_target"]
    assert target["estimate"] == pytest.approx(100.0, rel=1e-9)
    assert target["low"] == pytest.approx(10.0, rel=1e-9) and target["high"] == pytest.approx(1000.0, rel=1e-9)
    assert "(8 runs, checkpoints 2x from the crossings on average)" in target["definition"]
    assert (table["target"] == 1.0).all() and (table["metric"] == "val_loss").all()


def seed_table(s_min, b_crit, factors, sizes=SIZES) -> pd.DataFrame:
    return pd.DataFrame([{"batch_size": b, "seed": s, "steps": f * s_min * (1 + b_crit / b), "reached": True}
                         for s, f in enumerate(factors) for b in sizes])


@PROPERTY
@given(s_min=st.floats(10.0, 1e5), b_crit=st.floats(2.0, 512.0))
def test_the_fit_returns_the_parameters_of_exact_steps(s_min, b_crit):
    fit = fit_steps_model(SIZES, s_min * (1 + b_crit / SIZES))
    assert fit.s_min == pytest.approx(s_min, rel=1e-6) and fit.b_crit == pytest.approx(b_crit, rel=1e-6)
    assert fit.rmse_log < 1e-6


@PROPERTY
@given(factors=st.lists(st.floats(0.5, 2.0), min_size=3, max_size=5), order=st.randoms(use_true_random=False))
def test_relabelling_the_seeds_changes_no_estimate(factors, order):
    """Seeds are exchangeable: giving the same runs other seed numbers leaves every point estimate as it was."""
    table = seed_table(500.0, 32.0, factors, sizes=SIZES[:8]).assign(
        steps=lambda t: t["steps"] * (1 + 0.01 * np.sin(t["batch_size"] * (t["seed"] + 1))))
    labels = list(range(len(factors)))
    order.shuffle(labels)
    relabelled = table.assign(seed=table["seed"].map(dict(enumerate(labels))))
    a = bootstrap_fit(table, n_boot=0).set_index("quantity")["estimate"]
    b = bootstrap_fit(relabelled, n_boot=0).set_index("quantity")["estimate"]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9)
    values = {s: [f, 3 * f] for s, f in enumerate(factors)}
    relabelled_values = {labels[s]: v for s, v in values.items()}
    x = b_simple_at_target(at_crossing(values), n_boot=0).iloc[0]["estimate"]
    y = b_simple_at_target(at_crossing(relabelled_values), n_boot=0).iloc[0]["estimate"]
    assert x == pytest.approx(y, rel=1e-12)
    assert x == pytest.approx(math.sqrt(3) * math.prod(factors) ** (1 / len(factors)), rel=1e-9)


@PROPERTY
@given(s_min=st.floats(10.0, 1e4), b_crit=st.floats(2.0, 512.0), noise=st.integers(0, 10_000))
def test_the_noisy_fit_is_the_log_space_optimum(s_min, b_crit, noise):
    steps = s_min * (1 + b_crit / SIZES) * np.exp(0.1 * np.random.default_rng(noise).standard_normal(len(SIZES)))
    fit = fit_steps_model(SIZES, steps)
    ref_s_min, ref_b_crit = reference_steps_fit(SIZES, steps)
    assert fit.s_min == pytest.approx(ref_s_min, rel=1e-6) and fit.b_crit == pytest.approx(ref_b_crit, rel=1e-6)
