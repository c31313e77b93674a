"""Trend tests over batch sizes, equivalence, multiplicity corrections and seed spread, against answers known by hand.

Permutation p-values are checked against an independent enumeration (itertools, integer sums of squared rank
differences, or scipy's spearmanr where there are ties); the calibration test is the harness's null and power in small.
"""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, spearmanr

from batchlab.analysis.significance import (
    MIN_SEEDS_FOR_INTERVAL,
    benjamini_hochberg,
    format_spread,
    holm,
    rho_equivalence_p,
    seed_spread,
    simulate_trend_table,
    spearman_trend,
    trend_verdict,
)

ALPHA, MIN_EFFECT = 0.05, 0.5
SIZES = 2 ** np.arange(11)


def enumerated_p_increasing(y_ranks: list[int]) -> float:
    """Exact one-sided p of Spearman's rho for distinct ranks: the share of orderings with sum d^2 at most the observed."""
    n = len(y_ranks)
    positions = np.arange(1, n + 1)
    observed = int(((positions - np.array(y_ranks)) ** 2).sum())
    orderings = np.array(list(itertools.permutations(range(1, n + 1))), dtype=np.int64)
    squared_differences = ((orderings - positions) ** 2).sum(axis=1)
    return int((squared_differences <= observed).sum()) / math.factorial(n)


def test_a_monotone_trend_of_four_sizes_has_p_one_in_24():
    result = spearman_trend([1, 2, 4, 8], [0.1, 0.2, 0.3, 0.4])
    assert result.rho == pytest.approx(1.0) and result.exact and result.n == 4
    assert result.p_increasing == 1 / 24 and result.p_decreasing == 1.0


def test_a_monotone_decrease_of_five_sizes_has_p_one_in_120():
    result = spearman_trend([1, 2, 4, 8, 16], [5.0, 4.0, 3.0, 2.0, 1.0])
    assert result.rho == pytest.approx(-1.0)
    assert result.p_decreasing == 1 / 120 and result.p_increasing == 1.0


def test_one_swapped_pair_matches_the_enumerated_distribution():
    """rho = 1 - 6 * 2 / (4 * 15) = 0.8; the identity and the 3 adjacent swaps reach it: 4 of 24 orderings."""
    result = spearman_trend([1, 2, 4, 8], [1, 2, 4, 3])
    assert result.rho == pytest.approx(0.8)
    assert result.p_increasing == pytest.approx(enumerated_p_increasing([1, 2, 4, 3])) == pytest.approx(4 / 24)
    assert result.p_decreasing == pytest.approx(enumerated_p_increasing([4, 3, 1, 2]))


def test_ties_use_average_ranks_in_the_exact_distribution():
    x, y = [1, 2, 4, 8, 16], [1.0, 2.0, 2.0, 3.0, 5.0]
    observed = spearmanr(x, y).statistic
    reference = [spearmanr(x, [y[i] for i in ordering]).statistic for ordering in itertools.permutations(range(5))]
    result = spearman_trend(x, y)
    assert result.rho == pytest.approx(observed)
    assert result.p_increasing == pytest.approx(np.mean(np.array(reference) >= observed - 1e-12))
    assert result.p_decreasing == pytest.approx(np.mean(np.array(reference) <= observed + 1e-12))


def test_monte_carlo_p_of_nine_sizes_is_within_three_standard_errors_of_the_enumeration():
    y_ranks = [4, 1, 6, 2, 9, 3, 5, 8, 7]
    reference = enumerated_p_increasing(y_ranks)
    result = spearman_trend(SIZES[:9], y_ranks, n_perm=20000, seed=3)
    assert not result.exact and result.rho == pytest.approx(1 - 6 * 56 / (9 * 80))
    assert abs(result.p_increasing - reference) <= 3 * math.sqrt(reference * (1 - reference) / 20000)


def test_monte_carlo_p_is_fixed_by_the_seed():
    y = [0.3, 0.1, 0.5, 0.2, 0.4, 0.9, 0.6, 0.8, 0.7, 0.0, 1.0]
    first, again = spearman_trend(SIZES, y, seed=7), spearman_trend(SIZES, y, seed=7)
    other = spearman_trend(SIZES, y, seed=8)
    assert first == again
    assert first.p_increasing != other.p_increasing and first.rho == other.rho


def test_too_few_sizes_or_a_constant_metric_give_no_rho_and_p_one():
    for x, y in (([1, 2], [0.1, 0.2]), ([1, 2, 4, 8], [0.5, 0.5, 0.5, 0.5])):
        result = spearman_trend(x, y)
        assert math.isnan(result.rho) and result.p_increasing == 1.0 and result.p_decreasing == 1.0


def test_equivalence_p_is_the_larger_of_the_two_one_sided_tests_on_fishers_z():
    standard_error = math.sqrt(1.06 / 27)
    z, z_margin = math.atanh(0.1), math.atanh(0.5)
    by_hand = max(norm.cdf((z - z_margin) / standard_error), 1 - norm.cdf((z + z_margin) / standard_error))
    assert rho_equivalence_p(0.1, 30, 0.5) == pytest.approx(by_hand) == pytest.approx(0.0117277, abs=1e-6)
    assert rho_equivalence_p(-0.1, 30, 0.5) == pytest.approx(by_hand)


def test_equivalence_p_is_one_without_enough_sizes_or_a_rho():
    assert rho_equivalence_p(0.0, 3, 0.5) == 1.0 and rho_equivalence_p(math.nan, 30, 0.5) == 1.0
    assert rho_equivalence_p(1.0, 30, 0.5) == 1.0


def test_holm_and_benjamini_hochberg_on_a_textbook_example():
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_adjusted_p_values_keep_nan_and_are_capped_at_one():
    holm_adjusted, bh_adjusted = holm([0.5, math.nan, 0.9]), benjamini_hochberg([0.5, math.nan, 0.9])
    assert math.isnan(holm_adjusted[1]) and math.isnan(bh_adjusted[1])
    assert holm_adjusted[[0, 2]] == pytest.approx([1.0, 1.0])
    assert bh_adjusted[[0, 2]] == pytest.approx([0.9, 0.9])


@pytest.mark.parametrize(
    "rho, p_claimed, p_opposite, p_equivalent, sign, verdict, phrase",
    [
        (0.82, 0.003, 0.99, 0.9, 1, "replicated", "p = 0.003 ≤ 0.05 in the claimed direction and ρ = 0.82 ≥ 0.5"),
        (-0.7, 0.01, 0.99, 0.9, -1, "replicated", "ρ = -0.70 ≤ -0.5"),
        (0.3, 0.01, 0.99, 0.9, 1, "inconclusive", "falls short of 0.5"),
        (-0.7, 0.99, 0.01, 0.9, 1, "not replicated", "in the opposite direction and ρ = -0.70 ≤ -0.5"),
        (-0.3, 0.9, 0.04, 0.9, 1, "inconclusive", "p = 0.9 > 0.05 in the claimed direction"),
        (0.02, 0.45, 0.55, 0.01, 1, "not replicated", "equivalence p = 0.01 ≤ 0.05"),
        (0.6, 0.2, 0.8, 0.7, 1, "inconclusive", "neither an opposite trend"),
        (math.nan, 1.0, 1.0, 1.0, 1, "inconclusive", "ρ is not defined"),
    ],
)
def test_trend_verdict_truth_table(rho, p_claimed, p_opposite, p_equivalent, sign, verdict, phrase):
    got, reason = trend_verdict(rho, p_claimed, p_opposite, p_equivalent, sign, MIN_EFFECT, ALPHA)
    assert got == verdict and phrase in reason


def test_three_seeds_get_their_range_not_an_interval():
    spread = seed_spread([0.40, 0.45, 0.42])
    assert spread == {"kind": "range", "low": 0.40, "high": 0.45, "n": 3, "label": "range over 3 seeds"}
    assert format_spread(0.42, spread) == "0.42 (range over 3 seeds 0.40–0.45)"


def test_five_seeds_get_a_bootstrap_interval_of_their_mean():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    spread = seed_spread(values)
    assert MIN_SEEDS_FOR_INTERVAL == 5 and spread["kind"] == "interval" and spread["n"] == 5
    assert 1.0 < spread["low"] < 3.0 < spread["high"] < 5.0
    assert spread["label"] == "95% interval over 5 seeds"
    assert format_spread(3.0, spread).endswith("] (95% interval over 5 seeds)")


def test_equal_seeds_and_one_seed_are_never_called_a_range():
    equal, one = seed_spread([0.42, 0.42, 0.42, math.nan]), seed_spread([0.42])
    assert equal == {"kind": "single", "low": 0.42, "high": 0.42, "n": 3, "label": "3 seeds, all equal"}
    assert one["kind"] == "single" and one["label"] == "one seed"
    assert format_spread(0.42, equal) == "0.42 (3 seeds, all equal)"


def test_simulated_table_shares_the_size_effect_across_seeds():
    table = simulate_trend_table(SIZES, 3, 2.0, 1.0, 0.0, np.random.default_rng(0))
    assert table.shape == (11, 3) and np.all(table == table[:, :1])
    trend_only = simulate_trend_table(SIZES, 2, 2.0, 0.0, 0.0, np.random.default_rng(0))
    assert trend_only[:, 0] == pytest.approx(2.0 * (np.arange(11) - 5) / np.arange(11).std())


def new_rule_verdicts(slope: float, size_sd: float, seed_sd: float, reps: int, seed: int) -> list[str]:
    """The scorecard's verdicts (claims.trend_test, as shipped) on 'increases with batch size' over simulated
    tables of 11 sizes and 3 seeds."""
    from batchlab.analysis.trend import trend_test

    rng = np.random.default_rng(seed)
    verdicts = []
    for _ in range(reps):
        table = simulate_trend_table(SIZES, 3, slope, size_sd, seed_sd, rng)
        runs = pd.DataFrame({"batch_size": np.repeat(SIZES, 3), "seed": np.tile(np.arange(3), len(SIZES)),
                             "metric": table.ravel()})
        result = trend_test(runs, "batch_size", "metric", "increases_with_batch_size", MIN_EFFECT, ALPHA)
        verdicts.append(result["verdict"])
    return verdicts


def test_a_shared_size_effect_without_trend_is_called_replicated_at_most_alpha_of_the_time():
    reps = 300
    verdicts = new_rule_verdicts(0.0, 1.0, 0.0, reps, seed=11)
    assert verdicts.count("replicated") / reps <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / reps)


def test_a_trend_of_one_and_a_half_sd_of_a_seed_mean_is_detected():
    """The harness detects 1.5 SD (size SD 1, seed SD 1: a seed mean's SD is sqrt(1 + 1/3)) nearly always."""
    reps = 300
    verdicts = new_rule_verdicts(1.5 * math.sqrt(1 + 1 / 3), 1.0, 1.0, reps, seed=12)
    assert verdicts.count("replicated") / reps >= 0.8
