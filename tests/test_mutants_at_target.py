"""B_simple at the target: the estimator-noise variances, the noise they add, the interval's text and the table row,
each on a few runs whose answer is worked out by hand (a seed drawn c times repeats its runs' errors)."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.at_target import (
    b_simple_at_target,
    crossed_estimator_variance,
    estimator_text,
    estimator_variance,
    noise_at_crossing,
    seed_runs,
    with_estimator_noise,
)


def test_estimator_variance_counts_a_repeated_seed_twice_over():
    # seed 0 (two runs, SE 0.1 and 0.2) drawn twice and seed 1 (one run, SE 0.3) once: the pooled log mean is
    # (2 e1 + 2 e2 + e3) / 5, whose variance is (4 * 0.01 + 4 * 0.04 + 0.09) / 25
    runs = [(np.array([5.0, 7.0]), np.array([0.1, 0.2])), (np.array([9.0]), np.array([0.3]))]
    assert estimator_variance(runs, np.array([0, 0, 1])) == pytest.approx(0.29 / 25, rel=1e-12)
    assert estimator_variance(runs, np.array([1])) == pytest.approx(0.09, rel=1e-12)
    # a seed with no runs adds nothing to the count
    with_empty = [*runs, (np.array([]), np.array([]))]
    assert estimator_variance(with_empty, np.array([0, 2])) == pytest.approx(0.05 / 4, rel=1e-12)
    assert math.isnan(estimator_variance(with_empty, np.array([2, 2])))


def test_crossed_estimator_variance_by_hand():
    se = np.array([[0.1, np.nan], [0.2, 0.3]])
    finite = np.array([[True, True], [True, False]])  # cell [1, 1] has no B_simple; cell [0, 1] has one, SE unknown
    rows = np.array([[2, 0], [1, 1], [0, 1], [1, 0], [1, 0]])
    cols = np.array([[1, 1], [0, 2], [0, 1], [1, 0], [2, 0]])
    got = crossed_estimator_variance(se, finite, rows, cols)
    # draw 0: cells [0,0] and [0,1] each twice: 4 runs, variance 4 * 0.01 / 16
    # draw 1: cells [0,1] twice and [1,1] twice (no value): 2 runs, variance 4 * 0 / 4
    # draw 2: only cell [1,1]: no run, NaN. draw 3: cell [0,0] once: 0.01
    assert got[0] == pytest.approx(0.04 / 16, rel=1e-12)
    assert got[1] == 0.0
    assert math.isnan(got[2])
    assert got[3] == pytest.approx(0.01, rel=1e-12)
    assert got[4] == pytest.approx(0.04 / 4, rel=1e-12)  # draw 4: cell [0,0] twice through its column


def test_with_estimator_noise_multiplies_by_a_lognormal_of_the_given_variance():
    values = [10.0, 20.0, 30.0]
    assert with_estimator_noise(values, [0.0, np.nan, 0.0]).tolist() == values  # NaN variance: no noise
    z = np.random.default_rng(1).standard_normal(3)  # the default generator, seeded 1
    got = with_estimator_noise(values, [0.25, 1.0, 4.0])
    assert got == pytest.approx(np.array(values) * np.exp(z * np.array([0.5, 1.0, 2.0])), rel=1e-12)
    rng = np.random.default_rng(7)
    z7 = np.random.default_rng(7).standard_normal(3)
    assert with_estimator_noise(values, [1.0, 1.0, 1.0], rng) == pytest.approx(np.array(values) * np.exp(z7), rel=1e-12)


def crossings(b_simple, se=None, samples=None) -> pd.DataFrame:
    table = pd.DataFrame({"batch_size": 4, "seed": range(len(b_simple)), "b_simple": b_simple, "step_factor": 2.0})
    if se is not None:
        table["b_simple_log_se"] = se
    if samples is not None:
        table["eval_samples"] = samples
    return table


@pytest.mark.parametrize(("table", "text"), [
    (crossings([np.nan]), "no estimator noise to carry"),
    (crossings([1.0, 2.0, 3.0], se=[0.1, 0.3, 0.2], samples=[512, 512, 512]),
     "measured on 512 examples; each run's estimator noise (jackknife over them, SE of log B_simple 0.2 median) "
     "is in the interval"),
    (crossings([1.0, 2.0, 3.0], se=[0.1, np.nan, np.nan], samples=[256, 512, 1024]),
     "measured on 256-1024 examples; each run's estimator noise (jackknife over them, SE of log B_simple 0.1 median) "
     "is in the interval, except 2 runs without a stable jackknife"),
    (crossings([1.0, 2.0, np.nan], se=[0.1, np.nan, 0.5], samples=[512, np.nan, 512]),
     "measured on 512 examples; each run's estimator noise (jackknife over them, SE of log B_simple 0.1 median) "
     "is in the interval, except 1 run without a stable jackknife"),
    (crossings([1.0, 2.0], se=[np.nan, np.nan], samples=[512, 512]),
     "measured on 512 examples; their estimator noise is not in the interval (no jackknife)"),
    (crossings([1.0, 2.0], samples=[64, 64]),
     "measured on 64 examples; their estimator noise is not in the interval (no jackknife)"),
    (crossings([1.0], se=[0.05]),
     "measured on an unrecorded number of examples; each run's estimator noise (jackknife over them, SE of log "
     "B_simple 0.05 median) is in the interval"),
])
def test_estimator_text(table, text):
    assert estimator_text(table) == text


def test_seed_runs_keep_a_seeds_finite_values_and_zero_their_missing_ses():
    table = pd.DataFrame({"seed": [0, 0, 0, 1], "b_simple": [2.0, np.nan, 8.0, 5.0],
                          "b_simple_log_se": [np.nan, 0.4, 0.2, 0.3]})
    values, se = seed_runs(table, 0)
    assert values.tolist() == [2.0, 8.0] and se.tolist() == [0.0, 0.2]
    values, se = seed_runs(table.drop(columns=["b_simple_log_se"]), 1)
    assert values.tolist() == [5.0] and se.tolist() == [0.0]


def test_the_at_target_row_without_estimator_noise_spans_the_seed_geometric_means():
    # seeds 0 and 1 with one run each, B_simple 4 and 16: every resample is {4,4}, {4,16} or {16,16}, geometric
    # means 4, 8, 16 (probabilities 1/4, 1/2, 1/4): a 95% interval from 4 to 16, the estimate 8
    table = crossings([4.0, 16.0], se=[0.0, 0.0], samples=[100, 100])
    table.loc[2] = {"batch_size": 8, "seed": 1, "b_simple": np.nan, "step_factor": 8.0, "b_simple_log_se": np.nan,
                    "eval_samples": 100}
    row = b_simple_at_target(table, n_boot=400, level=0.9).iloc[0]
    assert row["estimate"] == pytest.approx(8.0, rel=1e-12)
    assert row["low"] == pytest.approx(4.0, rel=1e-12) and row["high"] == pytest.approx(16.0, rel=1e-12)
    assert row["level"] == 0.9 and row["n_boot"] == 400 and row["n_boot_ok"] == 400 and row["n_excluded"] == 1
    assert math.isnan(row["rmse_log"]) and row["flag"] == ""
    assert row["method"] == "gradient noise scale at the target (McCandlish)"
    # step factors 2, 2, 8: geometric mean 32^(1/3) = 3.17
    assert row["definition"] == ("B_simple at each run's checkpoint closest to its crossing of the target (3 runs, "
                                 "checkpoints 3.2x from the crossings on average): geometric mean; measured on 100 "
                                 "examples; each run's estimator noise (jackknife over them, SE of log B_simple 0 "
                                 "median) is in the interval")  # the run without a B_simple is not counted


def test_the_at_target_row_of_no_runs_is_flagged():
    row = b_simple_at_target(crossings([]), n_boot=10).iloc[0]
    assert math.isnan(row["estimate"]) and row["n_boot_ok"] == 0
    assert row["flag"] == "no run with gradient statistics reached the target"


def test_noise_at_crossing_carries_the_checkpoints_own_columns():
    noise = pd.DataFrame({"batch_size": [2, 2, 2], "seed": [3, 3, 3], "fraction": [0.0, 0.5, 1.0],
                          "step": [0, 10, 40], "b_simple": [1.0, 2.0, 3.0], "b_simple_log_se": [0.1, 0.2, 0.3],
                          "eval_samples": [64, 128, 256], "eval_loss": [0.9, 0.5, 0.4]})
    steps = pd.DataFrame({"batch_size": [2], "seed": [3], "steps": [20.0], "reached": [1]})
    out = noise_at_crossing(noise, steps).iloc[0]
    # crossing 20: checkpoint 10 (2x away) and 40 (2x away) tie; the first in step order, 10, is taken
    assert out["step"] == 10 and out["b_simple_log_se"] == 0.2 and out["eval_samples"] == 128.0
    assert out["eval_loss"] == 0.5 and out["step_factor"] == pytest.approx(2.0, rel=1e-12)
    below_one = noise_at_crossing(noise, steps.assign(steps=0.5)).iloc[0]  # a crossing under 1 step counts as 1
    assert below_one["step"] == 0 and below_one["step_factor"] == pytest.approx(1.0, rel=1e-12)
    bare = noise_at_crossing(noise[["batch_size", "seed", "fraction", "step", "b_simple"]], steps).iloc[0]
    assert all(math.isnan(bare[c]) for c in ("b_simple_log_se", "eval_samples", "eval_loss"))
    assert noise_at_crossing(noise.iloc[:0], steps).columns.tolist() == [
        "batch_size", "seed", "crossing", "fraction", "step", "b_simple", "b_simple_log_se", "eval_samples",
        "eval_loss", "step_factor"]
    assert noise_at_crossing(noise.drop(columns=["b_simple"]), steps).empty


def test_a_run_is_kept_only_with_checkpoints_of_its_own_and_unreached_runs_are_skipped_not_ending_the_search():
    # seed 0's initial weights were measured in the cell of batch size 1, which has no later checkpoint: that run has
    # no gradient statistics of its own and gets no row. Batch size 2 never reached the target; batch size 4 did.
    noise = pd.DataFrame({"batch_size": [1, 2, 4], "seed": [0, 0, 0], "fraction": [0.0, 0.5, 0.5],
                          "step": [0, 10, 10], "b_simple": [1.0, 2.0, 3.0]})
    steps = pd.DataFrame({"batch_size": [1, 2, 4], "seed": [0, 0, 0], "steps": [5.0, np.nan, 10.0],
                          "reached": [True, False, True]})
    out = noise_at_crossing(noise, steps)
    assert out["batch_size"].tolist() == [4] and out["b_simple"].tolist() == [3.0]


def test_no_run_reached_gives_an_empty_table_with_its_columns():
    noise = pd.DataFrame({"batch_size": [2], "seed": [0], "fraction": [0.5], "step": [10], "b_simple": [2.0]})
    steps = pd.DataFrame({"batch_size": [2], "seed": [0], "steps": [np.nan], "reached": [False]})
    out = noise_at_crossing(noise, steps)
    assert out.empty and out.columns.tolist()[:3] == ["batch_size", "seed", "crossing"] and len(out.columns) == 10
