"""Seed-bootstrap draws: percentile intervals on draws whose quantiles are known, and each distinct draw computed once."""

import math

import numpy as np
import pytest

from batchlab.analysis.resampling import describe_interval, distinct_resamples, percentile_interval, resample, seed_bootstrap


def test_draws_without_a_value_widen_the_interval_instead_of_truncating_it():
    """1,000 draws: the values 1..990 and 10 without a value (1%, under the 2.5% a 95% interval leaves in a
    tail). Dropping the 10 would give the 2.5% quantile of 1..990 (25.7); wherever they lie, the 2.5% quantile
    of all 1,000 is at least the (2.5 - 1) / 99 = 1.515% quantile of the rest: 1 + 989 x 0.01515 = 15.985."""
    draws = np.concatenate([np.arange(1.0, 991.0), np.full(10, np.nan)])
    low, high = percentile_interval(draws, 0.95)
    assert low == pytest.approx(1 + 989 * 0.015 / 0.99) and high == pytest.approx(990 - 989 * 0.015 / 0.99)
    assert percentile_interval(np.arange(1.0, 991.0), 0.95) == pytest.approx((1 + 989 * 0.025, 990 - 989 * 0.025))


def test_two_seeds_with_one_single_seed_resample_flagged_give_no_interval():
    """Two seeds a, b: the resamples {a, a}, {a, b} and {b, b} come a quarter, half and quarter of the time.
    When {a, a} has no value (its B_crit flagged), dropping it left [value of {b, b}, the estimate]: an
    interval ending at the point estimate although a quarter of the draws could lie anywhere. No 95% interval
    holds then."""
    draws = [math.nan] * 250 + [1.5] * 500 + [1.0] * 250
    assert all(math.isnan(end) for end in percentile_interval(draws, 0.95))
    text = describe_interval(draws, 1.5, *percentile_interval(draws, 0.95), n_units=2, level=0.95)
    assert "2 seeds give 3 distinct resamples" in text
    assert "250 of the 1000 draws have no value" in text and "no 95% interval" in text
    assert "a resample of one seed alone is 25% of the draws" in text


def test_the_description_says_when_an_end_is_the_estimate_itself():
    """Rank correlations of three seeds that all order the batch sizes alike: every resample gives 1."""
    text = describe_interval([1.0] * 200, 1.0, 1.0, 1.0, n_units=3, level=0.95)
    assert "3 seeds give 10 distinct resamples" in text and "1 distinct value among the 200 draws" in text
    assert "both ends are the estimate itself (100% of the draws with a value equal it)" in text
    assert "no 95% interval" not in text


def test_distinct_resamples():
    assert [distinct_resamples(k) for k in (1, 2, 3, 4, 5)] == [1, 3, 10, 35, 126]


def test_draws_whose_statistic_is_undefined_are_left_out():
    """The same 10 draws without a value, marked undefined (no unit measured in them), not unknown: left out,
    the interval is the plain 2.5% and 97.5% quantiles of 1..990."""
    draws = np.concatenate([np.arange(1.0, 991.0), np.full(10, np.nan)])
    assert percentile_interval(draws, 0.95, unknown=np.zeros(1000, bool)) == pytest.approx((25.725, 965.275))
    text = describe_interval(draws, 495.5, 25.725, 965.275, n_units=5, level=0.95, unknown=np.zeros(1000, bool))
    assert "10 of the 1000 draws, in which the statistic is not defined, are left out" in text
    assert "one seed alone" not in text  # 5^-5 = 0.03% of the draws, well inside a 2.5% tail


def test_each_distinct_draw_is_computed_once_and_the_draws_are_the_ones_drawn():
    """3 units allow 27 ordered draws: the statistic runs at most 27 times for 2000 draws, and every draw is the
    value it has computed afresh, bit for bit, though the statistic (a float sum in the drawn order) depends
    on the order of its indices."""
    values = np.array([1e16, 1.0, -1e16])
    assert sum(values[[0, 2, 1]]) != sum(values[[0, 1, 2]])  # the order matters in the last bit
    calls = []

    def ordered_sum(columns):
        calls.append(tuple(columns))
        total = 0.0
        for c in columns:
            total += values[c]
        return total

    draws = resample(ordered_sum, 3, 2000, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    fresh = [sum((values[c] for c in rng.integers(0, 3, 3)), 0.0) for _ in range(2000)]
    assert draws == fresh
    assert len(calls) == len(set(calls)) <= 27
    assert seed_bootstrap(ordered_sum, 3, 2000)[1] == fresh  # seed_bootstrap draws from default_rng(0) too
