"""Known answers for the trend tests and verdict helpers (batchlab.analysis.significance) where mutation testing found
gaps: three batch sizes, the Monte Carlo denominator, the equivalence p at its edges, the verdicts at exactly alpha
and exactly the minimum effect, the seed spread's texts, the simulated table's draws, and the interval verdicts at
their edges."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from batchlab.analysis.significance import (
    TrendTest, format_spread, interval_verdict, rho_equivalence_p, seed_spread, simulate_trend_table, spearman_trend,
    trend_verdict,
)


def test_three_batch_sizes_over_a_unit_range_have_a_rho():
    """x = 0, 0.5, 1 (a range of exactly 1), y increasing: rho 1, and 1 of the 3! = 6 orderings as high."""
    result = spearman_trend([0.0, 0.5, 1.0], [1.0, 2.0, 3.0])
    assert result == TrendTest(pytest.approx(1.0, rel=1e-12), pytest.approx(1 / 6, rel=1e-12), 1.0, 3, True)


def test_no_rho_is_a_nan_with_p_one_and_not_exact():
    for x, y in (([1, 2], [1, 2]), ([1, 2, 3], [5, 5, 5])):
        got = spearman_trend(x, y)
        assert math.isnan(got.rho) and (got.p_increasing, got.p_decreasing, got.n, got.exact) == (1.0, 1.0, len(y),
                                                                                                   False)
    with pytest.raises(ValueError, match=r"^x has 3 values, y has 2$"):
        spearman_trend([1, 2, 3], [1, 2])


def test_a_monte_carlo_p_counts_the_observed_ordering_among_20000_draws():
    """Nine sizes in order: only the identity ordering (1 in 9! = 362880) reaches rho 1, so among 20000 random
    orderings none does (expected 0.06) and p = 1 / 20001."""
    result = spearman_trend(2.0 ** np.arange(9), np.arange(9.0))
    assert (result.n, result.exact) == (9, False) and result.p_increasing == pytest.approx(1 / 20001, rel=1e-12)


def test_the_equivalence_p_at_four_sizes_and_at_the_margins_edges():
    """n = 4: SE sqrt(1.06); rho 0.1 against a margin of 0.5 by hand. A margin of 0 shows nothing (p 1); a margin of
    1.5 holds every rho in (-1, 1) (z of the margin infinite: p 0)."""
    se = math.sqrt(1.06)
    expected = max(norm.cdf((math.atanh(0.1) - math.atanh(0.5)) / se), norm.sf((math.atanh(0.1) + math.atanh(0.5)) / se))
    assert rho_equivalence_p(0.1, 4, 0.5) == pytest.approx(expected, rel=1e-12)
    assert rho_equivalence_p(0.1, 10, 0.0) == 1.0
    assert rho_equivalence_p(0.1, 10, 1.5) == 0.0


def test_verdicts_at_exactly_alpha_and_exactly_the_minimum_effect():
    verdict, reason = trend_verdict(0.5, 0.05, 0.9, 0.9, +1, 0.3, 0.05)
    assert verdict == "replicated" and reason == "p = 0.05 ≤ 0.05 in the claimed direction and ρ = 0.50 ≥ 0.3"
    verdict, reason = trend_verdict(0.3, 0.9, 0.01, 0.9, -1, 0.3, 0.05)  # a claimed decrease, an increase of 0.3
    assert verdict == "not replicated"
    assert reason == "p = 0.01 ≤ 0.05 in the opposite direction and ρ = 0.30 ≥ 0.3"
    assert trend_verdict(math.nan, 1.0, 1.0, 1.0, +1, 0.3, 0.05) == (
        "inconclusive", "ρ is not defined (fewer than 3 batch sizes, or the metric is the same at all of them)")


def test_seed_spreads_in_words():
    none = seed_spread([])
    assert none["kind"] == "none" and none["label"] == "no seeds" and math.isnan(none["low"]) and math.isnan(none["high"])
    seeds = [0.31, 0.17, 0.23, 0.58, 0.44]  # resampled means take hundreds of values: a new generator moves the ends
    assert seed_spread(seeds) == seed_spread(seeds)
    interval = {"kind": "interval", "low": 0.38123, "high": 0.46789, "n": 5, "label": "95% interval over 5 seeds"}
    assert format_spread(0.41567, interval) == "0.42 [0.38, 0.47] (95% interval over 5 seeds)"
    spread = {"kind": "range", "low": 0.40123, "high": 0.45678, "n": 3, "label": "range over 3 seeds"}
    assert format_spread(0.41567, spread) == "0.42 (range over 3 seeds 0.40–0.46)"
    assert format_spread(0.41567, {"kind": "single", "label": "one seed"}) == "0.42 (one seed)"


def test_the_simulated_table_is_the_trend_plus_a_shared_effect_plus_seed_noise():
    """The documented model written out with the same generator's draws, in order: the effect per size (shared by its
    seeds), then the seed noise; a zero SD draws nothing."""
    sizes = [2, 8, 32]
    standardized = np.array([-1.0, 0.0, 1.0]) * math.sqrt(1.5)  # log2 sizes 1, 3, 5: mean 3, SD sqrt(8/3)
    reference = np.random.default_rng(4)
    shared = reference.normal(0.0, 0.3, 3)
    noise = reference.normal(0.0, 0.1, (3, 2))
    got = simulate_trend_table(sizes, 2, 0.5, 0.3, 0.1, np.random.default_rng(4))
    assert got == pytest.approx((0.5 * standardized + shared)[:, None] + noise, rel=1e-12)
    only_noise = simulate_trend_table(sizes, 2, 0.5, 0.0, 0.1, np.random.default_rng(4))
    expected = (0.5 * standardized)[:, None] + np.random.default_rng(4).normal(0.0, 0.1, (3, 2))
    assert only_noise == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("low, high, band, verdict", [
    (0.1, 0.5, None, "replicated"), (0.5, 0.9, None, "replicated"), (0.0, 0.5, None, "inconclusive"),
    (-0.5, -0.1, None, "not replicated"), (-0.5, 0.0, None, "inconclusive"), (-0.5, 0.5, None, "inconclusive"),
    (math.nan, -0.5, None, "inconclusive"), (0.5, 1.5, (0.5, 1.5), "replicated"), (0.2, 0.5, (0.5, 1.5), "inconclusive"),
    (1.5, 2.0, (0.5, 1.5), "inconclusive"), (0.2, 0.4, (0.5, 1.5), "not replicated"),
    (1.6, 2.0, (0.5, 1.5), "not replicated"), (0.4, 0.6, (0.5, 1.5), "inconclusive"),
    (math.nan, 1.0, (0.5, 1.5), "inconclusive"),
])
def test_interval_verdicts_at_their_edges(low, high, band, verdict):
    assert interval_verdict(low, high, band) == verdict
