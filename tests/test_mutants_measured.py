"""The measured rule at its boundaries, with answers worked out by hand: each case sits exactly on a threshold
(a batch size equal to the estimate, a ratio of exactly 2, rates exactly 4x apart, an RMSE equal to the limit), where
a `<` written as `<=` changes the verdict."""

import math

import numpy as np
import pytest

from batchlab.analysis.measured import flag, flag_reasons, measured_b_crit, rate_limited

SIZES = [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]


@pytest.mark.parametrize(("b_crit_by_rate", "expected"), [
    ({1.0: 10.0, 4.0: 20.0}, False),  # exactly 2x apart: not more than 2x
    ({1.0: 10.0, 4.0: 20.5}, True),
    ({1.0: 10.0, 4.0: 5.0}, False),  # falling with the rate counts the same way
    ({1.0: 10.0, 4.0: 4.9}, True),
    ({4.0: 30.0, 1.0: 10.0, 2.0: 12.0}, True),  # any order of the rates; 3x between the extremes
    ({1.0: 10.0, 2.0: 100.0, 4.0: 12.0}, True),  # the middle rate counts: 10x between 10 and 100
    ({1.0: 10.0, 4.0: 15.0, 8.0: math.nan}, False),  # a NaN fit at a third rate is left out
])
def test_rate_limited_at_the_factor_of_two(b_crit_by_rate, expected):
    assert rate_limited(b_crit_by_rate) is expected


@pytest.mark.parametrize("b_crit_by_rate", [
    {1.0: 10.0},
    {1.0: 10.0, 3.9: 50.0},  # less than 4x apart
    {1.0: 10.0, 4.0: math.nan},
    {1.0: 10.0, 4.0: 0.0},
    {1.0: 10.0, 4.0: -50.0},
    {1.0: 10.0, 2.0: 50.0, 4.0: math.inf},
])
def test_rate_limited_needs_two_finite_positive_fits_four_fold_apart(b_crit_by_rate):
    with pytest.raises(ValueError, match="at least 4x apart"):
        rate_limited(b_crit_by_rate)


def test_a_span_of_exactly_four_is_enough():
    assert rate_limited({0.25: 10.0, 1.0: 11.0}) is False


def test_the_model_free_b20_at_the_edges_of_the_batch_sizes():
    lowest = flag_reasons("b_20_empirical", 2.0, SIZES, math.nan)
    assert lowest == ["the 20% rule already fails at the second batch size reached: B_20 lies below 2"]
    assert flag_reasons("b_20_empirical", 1.0, SIZES, math.nan) == lowest
    highest = ["the 20% rule still holds at the largest batch size reached: B_20 is at least 64"]
    assert flag_reasons("b_20_empirical", 64.0, SIZES, math.nan) == highest
    assert flag_reasons("b_20_empirical", 4.0, SIZES, math.nan) == []
    assert flag_reasons("b_20_empirical", 32.0, SIZES, 1.0) == []  # no fit, so no RMSE reason


def test_the_model_free_b20_with_one_or_two_batch_sizes_reached():
    only = "only 1 batch sizes reached the target (the rule asks for 4)"
    assert flag_reasons("b_20_empirical", 4.0, [8.0], math.nan) == [only]
    assert flag_reasons("b_20_empirical", 8.0, [8.0], math.nan) == [
        only, "the 20% rule still holds at the largest batch size reached: B_20 is at least 8"]
    assert flag_reasons("b_20_empirical", 4.0, [4.0, 8.0], math.nan) == [
        "only 2 batch sizes reached the target (the rule asks for 4)",
        "the 20% rule already fails at the second batch size reached: B_20 lies below 4"]


def test_a_b_crit_on_the_smallest_or_largest_batch_size_lies_inside():
    # 2 and 64 are the ends; B_crit on either end has fewer than two batch sizes in one regime, and no range reason
    assert flag_reasons("b_crit", 2.0, SIZES, 0.0) == [
        "the batch sizes that reached the target do not span both regimes: 0 at or below B_crit/2 = 1 and 5 at or "
        "above 2B_crit = 4 (the rule asks for 2 of each)"]
    assert flag_reasons("b_crit", 64.0, SIZES, 0.0) == [
        "the batch sizes that reached the target do not span both regimes: 5 at or below B_crit/2 = 32 and 0 at or "
        "above 2B_crit = 128 (the rule asks for 2 of each)"]
    assert flag_reasons("b_crit", 1.99, SIZES, 0.0) == [
        "B_crit = 1.99 lies below the smallest batch size that reached the target (2)"]
    assert flag_reasons("b_crit", 64.5, SIZES, 0.0) == [
        "B_crit = 64.5 lies above the largest batch size that reached the target (64)"]


def test_b20_is_judged_on_the_regimes_of_five_times_itself():
    # B_20 = 3.2 stands for B_crit = 16: 2, 4, 8 at or below 8 and 32, 64 at or above 32
    assert flag_reasons("b_20", 3.2, SIZES, 0.0) == []
    # read as B_crit = 3.2 it would have 1 batch size at or below 1.6 and not be measured
    assert flag_reasons("b_crit", 3.2, SIZES, 0.0) != []
    assert flag_reasons("s_min", 3.2, SIZES, 0.0) == []  # S_min is steps: no range or regime rule


def test_the_rmse_limit_itself_passes():
    assert flag_reasons("b_crit", 16.0, SIZES, 0.15) == []
    assert flag_reasons("s_min", 100.0, SIZES, 0.151) == [
        "the S(B) fit misses the steps by 0.15 in log (RMS; the rule allows 0.15)"]
    assert flag_reasons("b_crit", 16.0, SIZES, math.nan) == []
    assert flag_reasons("b_crit", 16.0, SIZES, math.inf) == []  # not a finite RMSE: nothing to compare


def test_four_distinct_batch_sizes_are_enough_and_repeats_count_once():
    assert flag_reasons("s_min", 100.0, [4, 8, 16, 32], 0.0) == []
    assert flag_reasons("s_min", 100.0, [4, 4, 8, 16, 16], 0.0) == [
        "only 3 batch sizes reached the target (the rule asks for 4)"]
    assert flag("other", math.nan, [4, 4, 8], math.nan) == "other could not be estimated (2 batch sizes reached the target)"


def test_two_reasons_are_joined_by_a_semicolon():
    assert flag("b_crit", 100.0, [2, 4, 8], 0.0) == (
        "only 3 batch sizes reached the target (the rule asks for 4); "
        "B_crit = 100 lies above the largest batch size that reached the target (8)")


def test_measured_b_crit_of_an_exact_curve():
    sizes = 2.0 ** np.arange(8)  # 1 .. 128
    steps = 500 * (1 + 12 / sizes)  # B_crit 12 by construction: 1, 2, 4 below 6 and 32, 64, 128 above 24
    b_crit, reason = measured_b_crit(sizes, steps)
    assert b_crit == pytest.approx(12.0, rel=1e-6) and reason == ""


def test_measured_b_crit_flags_a_b_crit_seen_from_one_regime_only():
    sizes = 2.0 ** np.arange(8)
    steps = 500 * (1 + 12 / sizes)
    steps[sizes > 16] = np.nan  # only 1..16 reached: B_crit 12 has no batch size at or above 24
    b_crit, reason = measured_b_crit(sizes, steps)
    assert b_crit == pytest.approx(12.0, rel=1e-6)
    assert reason == ("the batch sizes that reached the target do not span both regimes: 3 at or below B_crit/2 = 6 "
                      "and 0 at or above 2B_crit = 24 (the rule asks for 2 of each)")


def test_a_failed_fit_counts_only_positive_finite_steps_as_reached():
    # reached: 1 (10 steps) and 2 (0.5 steps); not 4 (0 steps), 8 (NaN), 16 (negative) or 32 (infinite)
    b_crit, reason = measured_b_crit([1, 2, 4, 8, 16, 32], [10.0, 0.5, 0.0, np.nan, -3.0, np.inf])
    assert math.isnan(b_crit)
    assert reason == "B_crit could not be estimated (2 batch sizes reached the target)"
