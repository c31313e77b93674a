"""The batch-size recommendation against curves whose answer is known in closed form.

Throughput linear up to a saturation batch size, X(B) = x0 min(B, B_sat), and steps S(B) = S_min (1 + B_crit/B):
T(B) = S(B) B / X(B) = S_min (B + B_crit) / (x0 min(B, B_sat)) falls up to B_sat and rises after it, so the
time-optimal batch size is B_sat; E(B) = S_min (B + B_crit) grows with B; a doubling from B cuts the steps by
(1 + B_crit/B) / (1 + B_crit/(2B)).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.recommend import recommend, regime

SIZES = [2**k for k in range(11)]


def measured(b_crit: float, b_sat: float, s_min: float = 100.0, x0: float = 50.0, seeds: int = 2, jitter: float = 0.0):
    """Steps and runs tables of exact curves; seed s's steps scaled by (1 + jitter s)."""
    steps = pd.DataFrame([{"batch_size": b, "seed": s, "steps": s_min * (1 + b_crit / b) * (1 + jitter * s), "reached": True}
                          for b in SIZES for s in range(seeds)])
    runs = pd.DataFrame([{"batch_size": b, "seed": s, "samples_per_s": x0 * min(b, b_sat), "lr": 1e-3}
                         for b in SIZES for s in range(seeds)])
    return steps, runs


@pytest.mark.parametrize(("b_crit", "b_sat"), [(16.0, 64), (256.0, 32), (4.0, 512)])
def test_the_time_optimal_batch_size_is_where_throughput_saturates(b_crit, b_sat):
    rec = recommend(*measured(b_crit, b_sat), "cpu", "learning rate fixed")
    assert rec["time_optimal_batch_size"] == b_sat and b_sat in rec["band"]
    expected = 100.0 * (b_sat + b_crit) / (50.0 * b_sat)
    assert rec["time_to_target_s"] == pytest.approx(expected, rel=1e-12)
    json.dumps(rec)  # the report writes it as JSON


def test_the_band_holds_the_batch_sizes_within_ten_percent_of_the_fastest():
    """B_crit 16, B_sat 64: T(32)/T(64) = 2 (32 + 16)/(64 + 16) = 1.2 and T(128)/T(64) = 144/80: only 64 is in the
    band. With B_crit 1,000, T(128)/T(64) = 1128/1064 = 1.06: 128 joins it."""
    assert recommend(*measured(16.0, 64), "cpu", "x")["band"] == [64]
    assert recommend(*measured(1000.0, 64), "cpu", "x")["band"] == [64, 128]


def test_the_sample_efficient_batch_size_is_the_largest_within_ten_percent_of_the_fewest_samples():
    """E(B)/E(1) = (B + B_crit)/(1 + B_crit) <= 1.1 holds up to B = 1.1 + 0.1 B_crit: 2 for B_crit 16, 25.1 for 240."""
    assert recommend(*measured(16.0, 64), "cpu", "x")["sample_efficient_batch_size"] == 2
    assert recommend(*measured(240.0, 64), "cpu", "x")["sample_efficient_batch_size"] == 16


def test_regimes_follow_the_cut_in_steps_per_doubling():
    rec = recommend(*measured(16.0, 64), "cpu", "x")
    table = pd.DataFrame(rec["table"]).set_index("batch_size")
    exact = {b: (1 + 16 / b) / (1 + 16 / (2 * b)) for b in SIZES[:-1]}
    assert table.loc[SIZES[:-1], "steps_cut_per_doubling"].tolist() == pytest.approx([exact[b] for b in SIZES[:-1]], rel=1e-12)
    assert [regime(exact[b]) for b in (1, 2, 4, 64, 128)] == [
        "perfect scaling", "perfect scaling", "diminishing returns", "diminishing returns", "maximal data parallelism"]
    assert table.loc[1024, "regime"] == table.loc[512, "regime"]  # the largest takes its last step's value


def test_the_range_over_seeds_and_the_paragraph():
    rec = recommend(*measured(16.0, 64, jitter=0.1), "cpu", "learning rate fixed, not tuned per batch size")
    low, high = rec["time_to_target_range_s"]
    assert low == pytest.approx(100 * 80 / (50 * 64)) and high == pytest.approx(1.1 * low)
    assert rec["paragraph"].startswith("On this cpu, batch size 64 at learning rate 0.001 reaches the target fastest")
    # the next larger batch size: throughput saturated (1x) and (128 + 16)/(64 + 16) = 1.8x the samples
    assert "Batch size 128 runs 1x as many samples per second but needs 1.8x the samples." in rec["paragraph"]
    assert rec["paragraph"].endswith("The learning rate fixed, not tuned per batch size.")


def test_batch_sizes_that_never_reached_the_target_are_named_not_chosen():
    steps, runs = measured(16.0, 64)
    steps.loc[steps["batch_size"] >= 64, "reached"] = False
    rec = recommend(steps, runs, "cpu", "x")
    assert rec["time_optimal_batch_size"] == 32
    table = pd.DataFrame(rec["table"]).set_index("batch_size")
    assert table.loc[64, "time_s"] is None or math.isnan(table.loc[64, "time_s"])
    assert table.loc[256, "regime"] == "not measured"
    assert table.loc[32, "regime"] == table.loc[16, "regime"] == "diminishing returns"  # the largest reached: 16's cut
    none = recommend(steps.assign(reached=False), runs, "cpu", "x")
    assert none == {"available": False, "reason": "no batch size reached the target", "table": none["table"]}
    assert np.isnan(pd.DataFrame(none["table"])["time_s"].astype(float)).all()


def _dedicated(b_sat: float, x0: float = 50.0, spread: float = 0.1, available_mb: float = 1000.0) -> pd.DataFrame:
    """A throughput measurement's rows: three repeats at x0 min(B, B_sat) times 1 - spread, 1, 1 + spread; activation
    memory 1 MB + 0.5 MB per sample, 10 MB fixed."""
    return pd.DataFrame([{"batch_size": b, "repeat": r, "samples_per_s": x0 * min(b, b_sat) * f, "fits": True,
                          "device": "cpu", "fixed_mb": 10.0, "activation_mb": 1 + 0.5 * b, "available_mb": available_mb,
                          "block_s": 0.25, "warm_steps": 3}
                         for b in SIZES for r, f in enumerate((1 - spread, 1.0, 1 + spread))])


def test_a_dedicated_throughput_replaces_the_runs_own_and_widens_the_range_by_its_repeats():
    steps, runs = measured(16.0, 64, jitter=0.1)
    runs["samples_per_s"] = 1.0  # the runs' own throughput, which the measurement must replace
    rec = recommend(steps, runs, "cpu", "learning rate fixed", _dedicated(64))
    assert rec["time_optimal_batch_size"] == 64
    row = next(r for r in rec["table"] if r["batch_size"] == 64)
    assert row["samples_per_s"] == pytest.approx(50.0 * 64, rel=1e-12)
    fewest, most = 100.0 * (1 + 16 / 64), 100.0 * (1 + 16 / 64) * 1.1
    assert row["time_s_low"] == pytest.approx(fewest * 64 / (50.0 * 64 * 1.1), rel=1e-12)
    assert row["time_s_high"] == pytest.approx(most * 64 / (50.0 * 64 * 0.9), rel=1e-12)
    assert rec["throughput_source"].startswith("a dedicated measurement") and "3 timed blocks" in rec["throughput_source"]
    assert rec["memory"]["kind"] == "estimate" and rec["memory"]["all_fit"]


def test_memory_that_holds_fewer_than_the_largest_batch_size_is_said():
    steps, runs = measured(16.0, 64)
    rec = recommend(steps, runs, "cpu", "learning rate fixed", _dedicated(64, available_mb=300.0))
    assert rec["memory"]["largest_fitting"] == math.floor((300 - 11) / 0.5) == 578
    assert [r["fits_memory"] for r in rec["table"]] == [b <= 578 for b in SIZES]
    assert "Memory holds batches up to 578 (an estimate): larger ones need micro-batches." in rec["paragraph"]
    json.dumps(rec)


def test_tuned_rates_give_their_scaling_rule_and_untuned_ones_none():
    steps, runs = measured(16.0, 64)
    runs["lr"] = 1e-3 * (runs["batch_size"] / 32.0) ** 0.5
    assert recommend(steps, runs, "cpu", "learning rate fixed")["rate_scaling"] is None  # no lr_tuned column
    runs["lr_tuned"] = True
    rec = recommend(steps, runs, "cpu", "learning rate tuned per batch size by steps to the target")
    rule = rec["rate_scaling"]
    assert rule["exponent"] == pytest.approx(0.5, rel=1e-12)
    at = rule["lr_at_base"] * (48 / rule["base_batch_size"]) ** rule["exponent"]
    assert at == pytest.approx(1e-3 * 1.5**0.5, rel=1e-12)  # a rate between the grid's points
    assert "the rate scales about as B^0.50" in rec["paragraph"]
