"""Percentile intervals of seed-bootstrap draws, on draws whose quantiles are known."""

import math

import numpy as np
import pytest

from batchlab.resampling import percentile_interval


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
