"""The recommendation's pieces on tables small enough to work out by hand: the cut in steps per doubling across gaps,
the regime thresholds, durations, the memory ceiling from one batch size, the throughput summary and the
per-batch-size table."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.recommend import (
    _duration,
    _records,
    cuts_per_doubling,
    memory_ceiling,
    per_batch_size,
    rate_scaling,
    recommend,
    regime,
    summary,
)


def test_cuts_per_doubling_skip_unreached_batch_sizes():
    sizes = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    steps = np.array([800.0, np.nan, 200.0, 0.0, 100.0])
    # 1 -> 4 is two doublings for a 4x cut: 2 per doubling; 4 -> 16, two doublings for a 2x cut: sqrt 2 per doubling;
    # the largest reached (16) takes the value before it; 2 and 8 never reached
    got = cuts_per_doubling(sizes, steps)
    assert got[0] == pytest.approx(2.0, rel=1e-12) and got[2] == pytest.approx(math.sqrt(2), rel=1e-12)
    assert got[4] == pytest.approx(math.sqrt(2), rel=1e-12)
    assert math.isnan(got[1]) and math.isnan(got[3])


def test_cuts_per_doubling_of_one_or_no_reached_batch_size():
    assert np.isnan(cuts_per_doubling(np.array([4.0, 8.0]), np.array([10.0, np.nan]))).all()
    assert np.isnan(cuts_per_doubling(np.array([4.0]), np.array([10.0]))).all()
    two = cuts_per_doubling(np.array([4.0, 8.0]), np.array([30.0, 20.0]))
    assert two.tolist() == pytest.approx([1.5, 1.5], rel=1e-12)


@pytest.mark.parametrize(("cut", "name"), [
    (1.8, "perfect scaling"), (1.7999, "diminishing returns"), (1.1, "diminishing returns"),
    (1.0999, "maximal data parallelism"), (0.5, "maximal data parallelism"), (math.nan, "not measured"),
    (math.inf, "not measured"),
])
def test_regime_at_its_thresholds(cut, name):
    assert regime(cut) == name


@pytest.mark.parametrize(("seconds", "text"), [(5.0, "5 s"), (119.4, "119 s"), (120.0, "2 min"), (90 * 60, "90 min")])
def test_durations_switch_to_minutes_at_two_minutes(seconds, text):
    assert _duration(seconds) == text


def test_records_turn_missing_numbers_into_none():
    table = pd.DataFrame({"a": [1.0, math.nan], "b": ["x", "y"], "c": [math.inf, 2.0]})
    assert _records(table) == [{"a": 1.0, "b": "x", "c": None}, {"a": None, "b": "y", "c": 2.0}]


def test_the_cpu_ceiling_from_one_batch_size_is_a_line_through_zero():
    table = pd.DataFrame({"batch_size": [16, 16], "device": "cpu", "fits": True, "fixed_mb": 20.0,
                          "activation_mb": [8.0, 8.0]})
    got = memory_ceiling(table, available_mb=100.0, largest=64)
    # 0.5 MB per sample, 20 MB fixed: (100 - 20) / 0.5 = 160 samples
    assert got["per_sample_mb"] == 0.5 and got["fixed_mb"] == 20.0 and got["largest_fitting"] == 160
    assert got["all_fit"] and got["micro_batch_needed"] is None and got["available_mb"] == 100.0
    exact = memory_ceiling(table, available_mb=52.0, largest=64)  # exactly 64 fit: all of them
    assert exact["largest_fitting"] == 64 and exact["all_fit"] and exact["micro_batch_needed"] is None
    unknown = memory_ceiling(table, available_mb=math.nan, largest=64)
    assert unknown["largest_fitting"] is None and unknown["all_fit"] and unknown["micro_batch_needed"] is None
    flat = memory_ceiling(table.assign(activation_mb=0.0), available_mb=100.0, largest=64)
    assert flat["largest_fitting"] is None and flat["all_fit"]


def test_on_a_gpu_where_everything_fit():
    table = pd.DataFrame({"batch_size": [8, 8, 64], "device": ["cuda", "cuda", "cuda"], "fits": [True, True, True]})
    got = memory_ceiling(table, available_mb=math.nan, largest=64)
    assert got["largest_fitting"] == 64 and got["all_fit"] is True and got["micro_batch_needed"] is None
    none_fit = memory_ceiling(table.assign(fits=False), available_mb=math.nan, largest=64)
    assert none_fit["largest_fitting"] == 0 and none_fit["all_fit"] is False and none_fit["micro_batch_needed"] == 0


def test_summary_takes_median_and_range_over_the_repeats_that_fit():
    table = pd.DataFrame({"batch_size": [8, 8, 8, 8, 16], "fits": [True, True, True, False, True],
                          "samples_per_s": [10.0, 30.0, 20.0, 99.0, 5.0]})
    got = summary(table)
    assert got.columns.tolist() == ["batch_size", "samples_per_s", "samples_per_s_low", "samples_per_s_high", "repeats"]
    assert got.iloc[0].tolist() == [8, 20.0, 10.0, 30.0, 3] and got.iloc[1].tolist() == [16, 5.0, 5.0, 5.0, 1]


def small_tables():
    """Batch sizes 2 and 8, seeds 0 and 1; seed 1 at 8 never reached the target."""
    steps = pd.DataFrame({"batch_size": [2, 2, 8, 8], "seed": [0, 1, 0, 1], "steps": [100.0, 300.0, 40.0, 999.0],
                          "reached": [True, True, True, False]})
    runs = pd.DataFrame({"batch_size": [2, 2, 8, 8], "seed": [0, 1, 0, 1], "samples_per_s": [10.0, 30.0, 40.0, 80.0],
                         "lr": [0.1, 0.3, 0.5, 0.7]})
    return steps, runs


def test_the_per_batch_size_table_by_hand():
    table = per_batch_size(*small_tables()).set_index("batch_size")
    # B = 2: mean steps 200, median throughput 20, time 200 * 2 / 20 = 20 s; seed times 100*2/10 = 20, 300*2/30 = 20
    two = table.loc[2]
    assert (two["steps"], two["samples_per_s"], two["time_s"], two["samples"]) == (200.0, 20.0, 20.0, 400.0)
    assert (two["time_s_low"], two["time_s_high"], two["seeds_reached"], two["seeds"], two["lr"]) == (20.0, 20.0, 2, 2, 0.2)
    # B = 8: only seed 0 reached: 40 steps; median throughput 60; time 40 * 8 / 60; its seed's own time 40 * 8 / 40
    eight = table.loc[8]
    assert eight["steps"] == 40.0 and eight["samples_per_s"] == 60.0 and eight["seeds_reached"] == 1
    assert eight["time_s"] == pytest.approx(320 / 60, rel=1e-12) and eight["time_s_low"] == 8.0 == eight["time_s_high"]
    # 200 -> 40 over two doublings: sqrt 5 per doubling
    assert two["steps_cut_per_doubling"] == pytest.approx(math.sqrt(5), rel=1e-12)
    assert two["regime"] == "perfect scaling" and eight["regime"] == "perfect scaling"


def test_a_dedicated_speed_gives_the_range_from_its_extremes():
    steps, runs = small_tables()
    speed = pd.DataFrame({"batch_size": [2], "samples_per_s": [50.0], "samples_per_s_low": [40.0],
                          "samples_per_s_high": [100.0]})
    table = per_batch_size(steps, runs, speed).set_index("batch_size")
    # fewest steps (100) at the highest throughput, most (300) at the lowest
    assert table.loc[2, "time_s_low"] == 100 * 2 / 100.0 and table.loc[2, "time_s_high"] == 300 * 2 / 40.0
    assert table.loc[2, "samples_per_s"] == 50.0
    assert math.isnan(table.loc[8, "samples_per_s"]) and math.isnan(table.loc[8, "time_s"])  # not measured


def test_the_recommendation_by_hand():
    steps, runs = small_tables()
    rec = recommend(steps, runs, "cpu", "learning rate fixed")
    # times 20 s (B = 2) and 5.33 s (B = 8): 8 is fastest, 2 is not within 10%; samples 400 and 320: 8 the frugal one
    assert rec["time_optimal_batch_size"] == 8 and rec["band"] == [8] and rec["sample_efficient_batch_size"] == 8
    assert rec["time_to_target_s"] == pytest.approx(320 / 60, rel=1e-12) and rec["time_optimal_lr"] == 0.6
    assert rec["time_to_target_range_s"] == [8.0, 8.0]
    assert rec["paragraph"] == ("On this cpu, batch size 8 at learning rate 0.6 reaches the target fastest: 5.33 s of "
                                "training (one seed; perfect scaling). The learning rate fixed.")
    assert rec["band_rule"].endswith("within 10% of the fastest mean")
    assert rec["rate_scaling"] is None and rec["memory"] is None


def test_the_band_and_the_frugal_batch_size_at_ten_percent():
    steps = pd.DataFrame({"batch_size": [2, 4, 8], "seed": 0, "steps": [100.0, 54.0, 27.6], "reached": True})
    runs = pd.DataFrame({"batch_size": [2, 4, 8], "seed": 0, "samples_per_s": [2.0, 4.0, 8.0], "lr": 0.1})
    rec = recommend(steps, runs, "cpu", "learning rate fixed")
    # times 100, 54, 27.6 s; samples 200, 216, 220.8: within 10% of 200 means up to 220: 2 and 4
    assert rec["time_optimal_batch_size"] == 8 and rec["band"] == [8]
    assert rec["sample_efficient_batch_size"] == 4
    # throughput equal to the batch size: times 109 s (B = 2) and 100 s (B = 4): within 10%, so both in the band;
    # at 111 s batch size 2 falls out
    near = pd.DataFrame({"batch_size": [2, 4], "seed": 0, "steps": [109.0, 100.0], "reached": True})
    assert recommend(near, runs.iloc[:2], "cpu", "x")["band"] == [2, 4]
    far = near.assign(steps=[111.0, 100.0])
    assert recommend(far, runs.iloc[:2], "cpu", "x")["band"] == [4]


def test_the_rate_scaling_of_two_batch_sizes():
    table = pd.DataFrame({"batch_size": [4, 16, 64], "lr": [0.01, 0.04, math.nan]})
    got = rate_scaling(table)
    # lr grows 4x over 4x in B: exponent 1; base batch size the geometric mean of 4 and 16 = 8, where lr is 0.02
    assert got["exponent"] == pytest.approx(1.0, rel=1e-12) and got["base_batch_size"] == pytest.approx(8.0, rel=1e-12)
    assert got["lr_at_base"] == pytest.approx(0.02, rel=1e-12)
    assert rate_scaling(table.assign(lr=[0.01, 0.0, math.nan])) is None  # one batch size with a positive rate
