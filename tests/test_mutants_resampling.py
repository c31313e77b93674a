"""The resampling helpers on cases small enough to work out by hand: counts of a drawn row, the crossed mean of a
table with one cell counted once, HC3's k/(k - 1) on two units either way round, the scorecard's note for an
estimate without an interval, and what seed_bootstrap does with no units and with warnings other than numpy's."""

import warnings

import numpy as np
import pytest

from batchlab.analysis.resampling import counts, crossed_mean, describe_interval, distinct_resamples, enough_draws, \
    no_interval_note, percentile_interval, pigeonhole_draws, seed_bootstrap, small_sample_spread, wild_log_steps


def test_counts_of_each_unit_in_a_draw():
    assert counts(np.array([[0, 0, 2], [1, 1, 1]]), 3).tolist() == [[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]]


def test_a_crossed_mean_of_one_cell_counted_once_is_that_cell():
    values = np.array([[5.0, np.nan], [7.0, 9.0]])
    # draw 1: row 0 once, column 0 once: only the 5; draw 2: no finite cell counted; draw 3: (5 + 2 x 7) / 3 = 19/3
    row_counts = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    col_counts = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    out = crossed_mean(values, row_counts, col_counts)
    assert out[0] == 5.0 and np.isnan(out[1]) and out[2] == pytest.approx(19 / 3, rel=1e-12)


@pytest.mark.parametrize(("axis", "expected"), [
    # units are rows (means 2 and 6 about 4): k = 2, k/(k - 1) = 2, so each row moves by its deviation once more
    (0, [[-1.0, 1.0], [7.0, 9.0]]),
    # units are columns (means 3 and 5 about 4)
    (1, [[0.0, 4.0], [4.0, 8.0]]),
])
def test_small_sample_spread_of_two_units_doubles_their_deviation(axis, expected):
    assert small_sample_spread(np.array([[1.0, 3.0], [5.0, 7.0]]), axis=axis).tolist() == expected


def test_small_sample_spread_of_one_unit_is_unchanged():
    values = np.array([[1.0, np.nan], [5.0, np.nan]])  # units are columns, and only the first has values: k = 1
    assert np.array_equal(small_sample_spread(values, axis=1), values, equal_nan=True)


def test_group_labels_must_not_decrease():
    with pytest.raises(ValueError, match="^group labels must be non-decreasing along each row$"):
        pigeonhole_draws(np.array([[0, 1, 0]]), np.random.default_rng(0))


@pytest.mark.parametrize(("estimate", "low", "high", "flagged", "expected"), [
    (5.0, np.nan, np.nan, 0.1, "no 95% interval: B_crit flagged in 10% of the resamples"),
    (5.0, 1.0, np.nan, 0.1, "no 95% interval: B_crit flagged in 10% of the resamples"),  # one end is no interval
    (5.0, 1.0, 9.0, 0.1, ""),  # an interval: nothing to explain
    (5.0, np.nan, np.nan, 0.0, ""),  # flagged in no draw: the interval is missing for another reason
    (np.nan, np.nan, np.nan, 0.1, ""),  # no estimate
    (None, np.nan, np.nan, 0.1, ""),
])
def test_the_note_for_an_estimate_without_an_interval(estimate, low, high, flagged, expected):
    assert no_interval_note(estimate, low, high, flagged, 0.95) == expected


def test_seed_bootstrap_without_units_calls_nothing():
    calls = []
    assert seed_bootstrap(lambda columns: calls.append(columns) or 1.0, 0, 10) == (None, [])
    assert calls == []


def test_seed_bootstrap_silences_numpy_runtime_warnings_only():
    def statistic(columns):
        warnings.warn("a statistic's own warning", UserWarning)
        return float(np.nanmean(np.full(len(columns), np.nan)))  # RuntimeWarning: mean of empty slice

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        point, draws = seed_bootstrap(statistic, 2, 3)
    assert np.isnan(point) and len(draws) == 3
    assert {w.category for w in caught} == {UserWarning}


def test_wild_log_steps_clip_the_leverage_to_0_and_0_95():
    # scale 1 / (1 - h): h = -0.1 (rounding below 0) counts as 0, scale 1; h = 0.99 is capped at 0.95, scale 20;
    # h = 0.5, scale 2; a NaN residual counts as 0. Each point: 10 + (scale x sign - 1) x residual
    out = wild_log_steps(np.full((1, 4), 10.0), np.array([1.0, 1.0, 2.0, np.nan]), np.array([[1.0, -1.0, 1.0, 1.0]]),
                         np.array([-0.1, 0.99, 0.5, 0.3]))
    assert out.shape == (1, 4) and out[0].tolist() == pytest.approx([10.0, -11.0, 12.0, 10.0], rel=1e-12)


def describe(draws, estimate, n_units, level=0.95, unknown=None):
    low, high = percentile_interval(draws, level, unknown)
    return describe_interval(draws, estimate, low, high, n_units, level, unknown=unknown)


def test_the_description_when_unknown_draws_leave_no_interval():
    # 3 of 10 draws without a value: more than the 2.5% tail, so no interval; 3^-3 = 3.7% of the draws are a resample
    # of one seed alone
    draws = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, np.nan, np.nan, np.nan]
    assert describe(draws, 5.0, 3) == (
        "3 seeds give 10 distinct resamples; 3 of the 10 draws have no value; no 95% interval: they are more than the "
        "2.5% of the draws in one tail and could lie on either side; 5 distinct values among the others; a resample "
        "of one seed alone is 3.7% of the draws, more than the 2.5% in a tail, so an end of the interval can be one "
        "seed's own value")


def test_the_description_when_one_unknown_draw_widens_the_interval():
    # 1 of 41 draws without a value (2.4%, within the 2.5% tail): the ends are the 0.0625% and 99.94% quantiles of
    # the 40 others, 1 and 3; the estimate 1 is the lower end, and 10 of the 40 draws equal it
    draws = [1.0] * 10 + [2.0] * 10 + [3.0] * 20 + [np.nan]
    assert describe(draws, 1.0, 5) == (
        "5 seeds give 126 distinct resamples; 1 of the 41 draws have no value; the interval is widened to hold "
        "wherever they would lie; 3 distinct values among the others; the lower end is the estimate itself (25% of "
        "the draws with a value equal it)")
    assert describe(draws, 3.0, 5).endswith("; the upper end is the estimate itself (50% of the draws with a value "
                                            "equal it)")


def test_the_description_of_draws_left_out_and_of_one_value():
    draws = [2.0] * 4 + [np.nan]
    assert describe(draws, 2.0, 2, unknown=[False] * 5) == (
        "2 seeds give 3 distinct resamples; 1 of the 5 draws, in which the statistic is not defined, are left out; "
        "1 distinct value among the 4 draws; a resample of one seed alone is 25% of the draws, more than the 2.5% in "
        "a tail, so an end of the interval can be one seed's own value; both ends are the estimate itself (100% of "
        "the draws with a value equal it)")


def test_the_description_tells_unknown_from_undefined_draws():
    draws = [1.0, 2.0, 3.0, np.nan, np.nan]  # the first NaN unknown (a flagged fit), the second undefined
    assert describe(draws, 2.0, 3, unknown=[False, False, False, True, False]) == (
        "3 seeds give 10 distinct resamples; 1 of the 5 draws, in which the statistic is not defined, are left out; "
        "1 of the 4 draws have no value; no 95% interval: they are more than the 2.5% of the draws in one tail and "
        "could lie on either side; 3 distinct values among the others; a resample of one seed alone is 3.7% of the "
        "draws, more than the 2.5% in a tail, so an end of the interval can be one seed's own value")


def test_one_seed_alone_exactly_at_the_tail_is_not_more_than_it():
    # 2 seeds: one seed alone is 2^-2 = 25% of the draws; at level 0.5 the tail is also 25%, not less
    text = describe([1.0, 2.0, 3.0, 4.0], 9.0, 2, level=0.5)
    assert text == "2 seeds give 3 distinct resamples; 4 distinct values among the 4 draws"


def test_no_description_below_two_units_or_without_draws():
    assert describe_interval([1.0, 2.0], 1.0, 1.0, 2.0, 1, 0.95) == ""
    assert describe_interval([], 1.0, np.nan, np.nan, 3, 0.95) == ""


def test_ends_equal_to_the_estimate_up_to_rounding_and_not_beyond():
    # an end 1e-13 from an estimate of 0 is the estimate (absolute tolerance 1e-12) ...
    text = describe_interval([1e-13, 1.0], 0.0, 1e-13, 1.0, 3, 0.95)
    assert text.endswith("; the lower end is the estimate itself (50% of the draws with a value equal it)")
    # ... an end of 9 for an estimate of 5 is not, nor are infinite or missing ends an infinite estimate
    assert describe_interval([5.0, 9.0], 5.0, 5.0, 9.0, 3, 0.95).endswith("the lower end is the estimate itself (50% "
                                                                          "of the draws with a value equal it)")
    assert "end is" not in describe_interval([1.0, 9.0], 5.0, 1.0, 9.0, 3, 0.95)
    assert "end is" not in describe_interval([1.0, 2.0], np.inf, 1.0, np.inf, 3, 0.95)
    assert "end is" not in describe_interval([1.0, 2.0], 2.0, np.nan, np.nan, 3, 0.95)
    assert "end is" not in describe_interval([1.0, 2.0], None, 1.0, 2.0, 3, 0.95)


def test_distinct_values_up_to_a_relative_1e_9():
    assert describe_interval([1.0, 1.5], 9.0, 1.0, 1.5, 5, 0.95).endswith("2 distinct values among the 2 draws")
    assert describe_interval([1.0, 1.0 + 1.5e-9], 9.0, 1.0, 1.0, 5, 0.95).endswith(
        "2 distinct values among the 2 draws")
    assert describe_interval([1e6, 1e6 + 1e-4], 9.0, 1e6, 1e6, 5, 0.95).endswith("1 distinct value among the 2 draws")


def test_distinct_resamples_of_no_unit_is_none():
    assert distinct_resamples(0) == 0 and distinct_resamples(1) == 1 and distinct_resamples(3) == 10


def test_a_share_of_draws_missing_exactly_a_tail_is_enough():
    assert enough_draws(0.975, 0.95) and not enough_draws(0.97, 0.95)
