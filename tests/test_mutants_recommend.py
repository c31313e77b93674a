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
    paragraph,
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
                          "activation_mb": [8.0, 8.0], "samples_per_s": [50.0, 60.0]})  # two repeats of one size
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
    assert "rule" in got


def test_the_cpu_ceiling_from_two_batch_sizes_is_the_line_through_both():
    table = pd.DataFrame({"batch_size": [8, 32], "device": "cpu", "fits": True, "fixed_mb": 10.0,
                          "activation_mb": [6.0, 18.0]})
    got = memory_ceiling(table, available_mb=100.0, largest=64)
    # slope (18 - 6) / 24 = 0.5 MB per sample, intercept 2: fixed 12, (100 - 12) / 0.5 = 176
    assert got["per_sample_mb"] == pytest.approx(0.5, rel=1e-12) and got["fixed_mb"] == pytest.approx(12.0, rel=1e-12)
    assert got["largest_fitting"] == 176


def test_on_a_gpu_where_everything_fit():
    table = pd.DataFrame({"batch_size": [8, 8, 64], "device": ["cuda", "cuda", "cuda"], "fits": [True, True, True]})
    got = memory_ceiling(table, available_mb=math.nan, largest=64)
    assert got["largest_fitting"] == 64 and got["all_fit"] is True and got["micro_batch_needed"] is None
    assert "rule" in got
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
    assert rec["available"] is True and rec["device"] == "cpu" and "sample_efficient_rule" in rec
    assert rec["rate"] == "learning rate fixed" and "regime_rule" in rec


def test_a_one_row_measurement_whose_memory_holds_exactly_the_largest_batch_size():
    steps, runs = small_tables()
    # at B = 8: 4 MB of activations (0.5 per sample) and 20 MB fixed; 24 MB available holds exactly 8 samples
    throughput = pd.DataFrame({"batch_size": [8], "device": ["cpu"], "fits": [True], "fixed_mb": [20.0],
                               "activation_mb": [4.0], "available_mb": [24.0], "samples_per_s": [80.0],
                               "block_s": [1.0], "warm_steps": [2]})
    rec = recommend(steps, runs, "cpu", "learning rate fixed", throughput)
    assert rec["memory"]["largest_fitting"] == 8 and rec["memory"]["all_fit"]
    assert [r["fits_memory"] for r in rec["table"]] == [True, True]
    assert rec["time_optimal_batch_size"] == 8 and rec["time_to_target_s"] == 40 * 8 / 80.0


def test_band_members_are_integers_in_the_paragraph():
    steps = pd.DataFrame({"batch_size": [2, 4], "seed": 0, "steps": [105.0, 50.0], "reached": True})
    runs = pd.DataFrame({"batch_size": [2, 4], "seed": 0, "samples_per_s": [2.0, 2.0], "lr": 0.1})
    rec = recommend(steps, runs, "cpu", "learning rate fixed")  # times 105 and 100 s
    assert rec["band"] == [2, 4] and all(type(b) is int for b in rec["band"])
    assert "Batch sizes 2, 4 are within 10% of the fastest" in rec["paragraph"]


def test_exactly_ten_percent_more_samples_is_still_sample_efficient():
    # fewest samples 10 (B = 1); B = 2 at 5.500000000000001 steps has 11.000000000000002 samples, the float of 10 x 1.1
    steps = pd.DataFrame({"batch_size": [1, 2], "seed": 0, "steps": [10.0, 10 * 1.1 / 2], "reached": True})
    runs = pd.DataFrame({"batch_size": [1, 2], "seed": 0, "samples_per_s": [1.0, 1.0], "lr": 0.1})
    assert 10 * 1.1 / 2 * 2 == 10.0 * (1 + 0.1)
    assert recommend(steps, runs, "cpu", "x")["sample_efficient_batch_size"] == 2


def test_a_time_exactly_ten_percent_over_the_fastest_is_in_the_band():
    # fastest: B = 2, 10 s. B = 1: seed 0 took 10 x 1.1 s at its own throughput 1 (its low, exactly at the band's
    # edge); seed 1 did not reach, and its throughput 0.5 puts the median at 0.75, the mean time above the edge
    edge = 10.0 * (1 + 0.1)
    steps = pd.DataFrame({"batch_size": [1, 1, 2], "seed": [0, 1, 0], "steps": [edge, np.nan, 10.0],
                          "reached": [True, False, True]})
    runs = pd.DataFrame({"batch_size": [1, 1, 2], "seed": [0, 1, 0], "samples_per_s": [1.0, 0.5, 2.0], "lr": 0.1})
    rec = recommend(steps, runs, "cpu", "x")
    assert rec["band"] == [1, 2]
    # the mean time alone at the edge: B = 1's seed 0 takes 2 x edge steps at its own throughput 0.5 (4 x edge s),
    # and the median throughput of 0.5 and 3.5 is 2: the mean time 2 x edge / 2 is exactly the edge
    runs2 = runs.assign(samples_per_s=[0.5, 3.5, 2.0])
    steps2 = steps.assign(steps=[2 * edge, np.nan, 10.0])
    rec2 = recommend(steps2, runs2, "cpu", "x")
    row = next(r for r in rec2["table"] if r["batch_size"] == 1)
    assert row["time_s"] == edge and row["time_s_low"] > edge
    assert rec2["band"] == [1, 2]


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
    assert got["lr_at_base"] == pytest.approx(0.02, rel=1e-12) and "rule" in got
    assert rate_scaling(table.assign(lr=[0.01, 0.0, math.nan])) is None  # one batch size with a positive rate


def test_untuned_runs_with_a_missing_tuned_flag_give_no_rate_scaling():
    steps, runs = small_tables()
    runs["lr_tuned"] = [np.nan, False, np.nan, False]  # not one run tuned
    assert recommend(steps, runs, "cpu", "x")["rate_scaling"] is None


def test_a_batch_size_that_reached_the_target_in_one_step_counts():
    got = cuts_per_doubling(np.array([1.0, 2.0]), np.array([2.0, 1.0]))
    assert got.tolist() == [2.0, 2.0]


def test_runs_without_a_rate_column():
    steps, runs = small_tables()
    table = per_batch_size(steps, runs.drop(columns=["lr"]))
    assert table["lr"].isna().all() and table["steps"].tolist() == [200.0, 40.0]


def test_the_paragraph_of_two_worked_cases():
    table = pd.DataFrame({"batch_size": [8, 16], "samples": [400.0, 480.0], "samples_per_s": [100.0, 150.0]})
    best = pd.Series({"batch_size": 8, "seeds_reached": 3, "time_s": 36.0, "time_s_low": 30.0, "time_s_high": 45.0,
                      "lr": 0.05, "regime": "diminishing returns", "samples_per_s": 100.0, "samples": 400.0})
    memory = {"largest_fitting": 1000, "all_fit": False, "kind": "estimate"}
    assert paragraph(table, best, [8, 16], "cpu", "learning rate fixed", memory, {"exponent": 0.5}) == (
        "On this cpu, batch size 8 at learning rate 0.05 reaches the target fastest: 36 s of training (30 s to 45 s "
        "over 3 seeds; diminishing returns). Batch size 16 runs 1.5x as many samples per second but needs 1.2x the "
        "samples. Batch sizes 8, 16 are within 10% of the fastest: these runs do not tell them apart. Memory holds "
        "batches up to 1,000 (an estimate): larger ones need micro-batches. Between the tuned batch sizes the rate "
        "scales about as B^0.50 (fitted to the tuned rates). The learning rate fixed.")
    two = pd.Series({**best.to_dict(), "batch_size": 16, "seeds_reached": 2, "time_s": 20.0, "time_s_low": 20.0,
                     "time_s_high": 20.0})
    measured_memory = {"largest_fitting": 1000, "all_fit": False, "kind": "measured"}
    assert paragraph(table, two, [16], "GPU", "learning rate tuned", measured_memory) == (
        "On this GPU, batch size 16 at learning rate 0.05 reaches the target fastest: 20 s of training (20 s for each "
        "of 2 seeds; diminishing returns). Memory holds batches up to 1,000: larger ones need micro-batches. "
        "The learning rate tuned.")


def test_a_reached_run_missing_from_the_runs_table_still_counts_its_steps():
    steps, runs = small_tables()
    steps.loc[len(steps)] = {"batch_size": 2, "seed": 2, "steps": 500.0, "reached": True}  # no run row for it
    table = per_batch_size(steps, runs).set_index("batch_size")
    assert table.loc[2, "steps"] == 300.0 and table.loc[2, "seeds_reached"] == 3  # (100 + 300 + 500) / 3
