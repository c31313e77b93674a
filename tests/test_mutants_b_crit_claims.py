"""The claims resting on B_crit on cases worked out by hand: a metric flat within each part of the regime (every
draw gives the same change, so the interval is the estimate), ties of an interval end with the tolerance, a part of
one batch size, one and two seeds, a B_crit the rule flags, B_crit flagged in about half the draws, steps without a
fit, exact S(B) curves for the vectorised fit's grid edges and its precision, and the helpers' own known answers."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.b_crit_claims import (
    _interval, _spread_within_parts, b_crit_of_seeds, degradation_test, noise_scale_test, profile_b_crit,
    regime_changes, regime_parts,
)

SIZES = 2.0 ** np.arange(11)  # 1 .. 1024


def steps_of(b_crits, sizes=SIZES, s_min: float = 100.0) -> pd.DataFrame:
    """Steps to target exactly on S(B) = S_min (1 + B_crit/B), one B_crit per seed."""
    return pd.DataFrame([{"batch_size": b, "seed": s, "steps": s_min * (1 + bc / b), "reached": True}
                         for s, bc in enumerate(b_crits) for b in sizes])


def flat_parts(values, seeds: int = 3, metric: str = "val_loss", sizes=SIZES) -> pd.DataFrame:
    """Every seed the same value at a batch size: a seed draw and a draw within a part of equal values change nothing."""
    return pd.DataFrame([{"batch_size": b, "seed": s, metric: v} for b, v in zip(sizes, values) for s in range(seeds)])


# B_crit 20 on 1 .. 1024: midpoint sqrt(20) = 4.5, so the parts are {1, 2, 4}, {8, 16} and the 6 sizes from 32
REGIME_FLAT = [1.0] * 5 + [1.25] * 6


# ---------------------------------------------------------------- degradation_test


def test_a_metric_flat_in_each_part_gives_its_change_in_every_draw():
    """Regime at 1.0, above B_crit at 1.25: the change above is +0.25 in every draw, the halves' change 0; two runs
    with no metric value are counted and left out."""
    table = pd.concat([flat_parts(REGIME_FLAT),
                       pd.DataFrame({"batch_size": [1.0, 1024.0], "seed": [0, 1], "val_loss": [np.nan, np.nan]})])
    result = degradation_test(table, "val_loss", 20.0, 0.1, n_boot=200)
    assert result["statistic"] == "degradation_above_b_crit" and result["verdict"] == "replicated"
    assert result["estimate"] == result["low"] == result["high"] == 0.25
    assert result["seed_values"] == [0.25, 0.25, 0.25]
    assert (result["n_x"], result["n_units"], result["n_excluded_runs"]) == (11, 3, 2)
    assert (result["at_smallest"], result["at_largest"]) == (1.0, 1.25)
    assert result["note"] == ""
    assert result["detail"].startswith(
        "B_crit 20 [20, 20], measured in 100% of the resamples; reference: the mean over the 5 batch sizes at or "
        "below it; its upper half (2 batch sizes) against its lower half (3) +0.000 [+0.000, +0.000], above it "
        "+0.250 (6); draws: seeds crossed with the batch sizes within each part, B_crit refitted with its residuals' "
        "signs drawn; 3 seeds give 10 distinct resamples; ")
    assert "; both ends are the estimate itself (100% of the draws" in result["detail"]
    assert result["detail"].endswith("; tolerance 0.1") and "fewer than" not in result["detail"]


def test_the_ends_at_the_smallest_and_largest_batch_size_are_those_sizes_own_means():
    values = [1.0, 1.1, 1.2, 1.3, 1.4, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5]
    result = degradation_test(flat_parts(values), "val_loss", 20.0, 0.1, n_boot=50)
    assert (result["at_smallest"], result["at_largest"]) == (1.0, 2.5)


def test_a_higher_is_better_metric_counts_a_fall_as_the_degradation():
    result = degradation_test(flat_parts([0.8] * 5 + [0.6] * 6, metric="val_accuracy"), "val_accuracy", 20.0, 0.1,
                              n_boot=50)
    assert result["estimate"] == pytest.approx(0.25) and result["verdict"] == "replicated"


def test_two_seeds_are_enough_for_a_verdict():
    assert degradation_test(flat_parts(REGIME_FLAT, seeds=2), "val_loss", 20.0, 0.1, n_boot=100)["verdict"] == "replicated"


def test_one_seed_has_no_resamples_and_no_interval():
    result = degradation_test(flat_parts(REGIME_FLAT, seeds=1), "val_loss", 20.0, 0.1, n_boot=100)
    assert result["verdict"] == "inconclusive" and math.isnan(result["low"]) and math.isnan(result["high"])
    assert result["detail"].startswith("B_crit 20 (no interval), no resamples of 1 seed; ")
    assert result["detail"].endswith("B_crit refitted with its residuals' signs drawn; tolerance 0.1")


def test_a_part_of_one_batch_size_makes_the_claim_inconclusive_and_says_so():
    """Sizes 1, 10, 12, 14, 100, 200, 400, 800 and B_crit 20 (midpoint 4.5): 1, 3 and 4 batch sizes in the parts."""
    sizes = [1.0, 10.0, 12.0, 14.0, 100.0, 200.0, 400.0, 800.0]
    result = degradation_test(flat_parts([1.0] * 4 + [2.0] * 4, sizes=sizes), "val_loss", 20.0, 0.1, n_boot=100)
    assert result["verdict"] == "inconclusive"
    assert ("above it +1.000 (4); fewer than 2 batch sizes in a part (1 in the regime's lower half, 3 in its upper "
            "half, 4 above B_crit); draws:") in result["detail"]


@pytest.mark.parametrize(("values", "tolerance", "verdict"), [
    # B_crit 9: parts {1, 2}, {4, 8}, the 7 from 16; the reference is (1 + 1 + 1.25 + 1.25) / 4 = 1.125
    ([1.0] * 2 + [1.25] * 2 + [2.0] * 7, 0.25 / 1.125, "replicated"),  # the halves' change is the tolerance: within
    ([1.0] * 4 + [1.25] * 7, 0.25, "not replicated"),  # the change above is the tolerance: not more than it
    # the halves' change the tolerance, the change above spread across it: neither shown
    ([1.0] * 2 + [1.25] * 2 + [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0], 0.25 / 1.125, "inconclusive"),
])
def test_an_interval_end_equal_to_the_tolerance(values, tolerance, verdict):
    assert degradation_test(flat_parts(values), "val_loss", 9.0, tolerance, n_boot=400)["verdict"] == verdict


def test_b_crit_above_a_thousand_is_written_with_a_lower_case_exponent():
    assert "B_crit 2e+03 [2e+03, 2e+03]" in degradation_test(flat_parts(REGIME_FLAT), "val_loss", 2000.0, 0.1, 50)["detail"]


def test_a_b_crit_that_is_not_a_number_is_not_a_measurement():
    result = degradation_test(flat_parts(REGIME_FLAT), "val_loss", math.nan, 0.1, n_boot=50)
    assert result["verdict"] == "inconclusive" and result["note"] == "B_crit not measured"
    assert result["detail"].startswith(
        "B_crit is not a measurement: B_crit could not be estimated (0 batch sizes reached the target); tolerance")


def test_a_flagged_b_crit_within_the_batch_sizes_gives_no_estimate():
    """B_crit 600 on 1 .. 1024: no batch size at 2 B_crit or above, flagged for every seed and for all of them."""
    result = degradation_test(flat_parts(REGIME_FLAT), "val_loss", b_crit_of_seeds(steps_of([600.0] * 3)), 0.1, 50)
    assert result["verdict"] == "inconclusive" and result["note"] == "B_crit not measured"
    assert math.isnan(result["estimate"]) and all(math.isnan(v) for v in result["seed_values"])
    assert result["detail"].startswith("B_crit is not a measurement: the batch sizes that reached the target do not")


def flagged_share(result: dict) -> float:
    """The note's share of draws with B_crit flagged, checked against the detail's share measured (rounded)."""
    flagged = float(re.fullmatch(r"no 95% interval: B_crit flagged in ([\d.]+)% of the resamples", result["note"])[1])
    measured = int(re.search(r"measured in (\d+)% of the resamples", result["detail"])[1])
    assert abs(flagged + measured - 100) <= 0.5 and 20 < flagged < 80
    return flagged


def test_b_crit_flagged_in_about_half_the_draws_leaves_no_interval_and_says_how_often():
    """Seeds' B_crit 100 .. 500 (their fit 252, measured): draws with mostly the large ones put 2 B_crit above 1024."""
    b_crit = b_crit_of_seeds(steps_of([100.0, 120.0, 140.0, 400.0, 500.0]))
    result = degradation_test(flat_parts([1.0] * 8 + [2.0] * 3, seeds=5), "val_loss", b_crit, 0.1, n_boot=200)
    flagged = flagged_share(result)
    assert math.isfinite(result["estimate"]) and math.isnan(result["low"])


def test_the_default_is_2000_draws_from_a_fixed_seed():
    rng = np.random.default_rng(7)
    table = flat_parts(REGIME_FLAT).assign(val_loss=lambda t: t["val_loss"] * np.exp(0.05 * rng.normal(size=len(t))))
    default, explicit = degradation_test(table, "val_loss", 20.0, 0.1), degradation_test(table, "val_loss", 20.0, 0.1, 2000)
    assert (default["low"], default["high"]) == (explicit["low"], explicit["high"])


def test_a_seed_without_a_value_at_a_batch_size_is_left_out_there():
    """Seed 0 has no value at B = 1: the draws of seed 0 alone have none there, which stays out of that draw."""
    table = flat_parts(REGIME_FLAT).query("not (seed == 0 and batch_size == 1)")
    result = degradation_test(table, "val_loss", 20.0, 0.1, n_boot=200)
    assert result["estimate"] == result["low"] == result["high"] == 0.25


# ---------------------------------------------------------------- noise_scale_test


def noise_of(b_simple, seeds=range(3), sizes=SIZES, b_crit: float = 50.0, fraction=lambda s: 1.0) -> pd.DataFrame:
    """One checkpoint per run, at the crossing of S(B) = 100 (1 + B_crit/B) itself."""
    return pd.DataFrame([{"batch_size": b, "seed": s, "fraction": fraction(s), "step": 100 * (1 + b_crit / b),
                          "b_simple": b_simple(b, s)} for s in seeds for b in sizes])


def test_b_simple_the_same_everywhere_gives_the_ratio_in_every_draw():
    """B_simple 25 at every run, B_crit 50: the ratio is 0.5 in every draw, within (1/3, 3)."""
    result = noise_scale_test(noise_of(lambda b, s: 25.0, fraction=lambda s: 0.5 if s == 0 else 1.0),
                              steps_of([50.0] * 3), 3.0, n_boot=200)
    assert result["statistic"] == "noise_scale_ratio" and result["verdict"] == "replicated"
    assert result["estimate"] == pytest.approx(0.5) and result["seed_values"] == pytest.approx([0.5] * 3)
    assert result["low"] == pytest.approx(0.5) and result["high"] == pytest.approx(0.5)
    assert (result["n_x"], result["n_units"], result["n_excluded_runs"], result["note"]) == (11, 3, 0, "")
    assert math.isnan(result["at_smallest"]) and math.isnan(result["at_largest"])
    assert result["detail"].startswith(
        "B_simple at the target 25 [25, 25] over 33 runs of 3 seeds at 11 batch sizes (checkpoints used, by "
        "fraction of training: 50%: 11, 100%: 22; on average 1x from the crossing in steps; ")
    assert ("; B_crit 50 [50, 50], measured in 100% of the resamples; factor 3; draws: seeds crossed with "
            "B_simple's batch sizes, B_crit refitted with its residuals' signs drawn; 3 seeds give 10 distinct "
            "resamples; ") in result["detail"]
    assert "; both ends are the estimate itself (100% of the draws" in result["detail"]


def test_the_band_is_one_over_the_factor_to_the_factor():
    """A ratio of 0.4 is within (1/2.5, 2.5) but not within (2/2.5, 2.5)."""
    result = noise_scale_test(noise_of(lambda b, s: 20.0), steps_of([50.0] * 3), 2.6, n_boot=100)
    assert result["estimate"] == pytest.approx(0.4) and result["verdict"] == "replicated"


def test_large_b_simple_and_b_crit_are_written_with_a_lower_case_exponent():
    sizes = 2.0 ** np.arange(13)
    result = noise_scale_test(noise_of(lambda b, s: 2000.0, sizes=sizes, b_crit=1000.0),
                              steps_of([1000.0] * 3, sizes=sizes), 3.0, n_boot=100)
    assert result["detail"].startswith("B_simple at the target 2e+03 [2e+03, 2e+03] over 39 runs")
    assert "; B_crit 1e+03 [1e+03, 1e+03], measured" in result["detail"]


def test_b_simple_below_one_is_a_measurement_and_zero_is_left_out():
    """B_simple 0.5 (positive, so defined) at every run but one whose B_simple is 0."""
    noise = noise_of(lambda b, s: 0.0 if (b, s) == (1.0, 0) else 0.5)
    result = noise_scale_test(noise, steps_of([50.0] * 3), 1000.0, n_boot=100)
    assert result["estimate"] == pytest.approx(0.01) and result["low"] == pytest.approx(0.01)
    assert result["high"] == pytest.approx(0.01)


def test_runs_without_an_estimator_noise_add_none():
    result = noise_scale_test(noise_of(lambda b, s: 25.0).assign(b_simple_log_se=np.nan), steps_of([50.0] * 3), 3.0, 100)
    assert result["low"] == pytest.approx(0.5) and result["high"] == pytest.approx(0.5)


def test_the_estimator_noise_of_each_batch_size_is_its_own():
    """Estimator noise at B = 1 only: the draws' spread comes from the draws that hold B = 1 and none otherwise, so
    it is not the same as that noise averaged over the batch sizes."""
    se = noise_of(lambda b, s: 25.0).assign(b_simple_log_se=lambda t: np.where(t["batch_size"] == 1, 0.5, 0.0))
    even = noise_of(lambda b, s: 25.0).assign(b_simple_log_se=0.5 / len(SIZES))
    one, spread = (noise_scale_test(n, steps_of([50.0] * 3), 3.0, n_boot=400) for n in (se, even))
    assert math.log(one["high"] / one["low"]) > 1.5 * math.log(spread["high"] / spread["low"])


def test_a_seed_without_b_simple_counts_for_b_crit_only():
    """Seed 2 has no B_simple: a draw of it alone has no ratio and is left out, not an unknown value."""
    noise = noise_of(lambda b, s: math.nan if s == 2 else 25.0)
    result = noise_scale_test(noise, steps_of([50.0] * 3), 3.0, n_boot=400)
    assert result["n_excluded_runs"] == 11 and result["n_units"] == 2
    assert result["low"] == pytest.approx(0.5) and result["high"] == pytest.approx(0.5)
    assert result["detail"].startswith("B_simple at the target 25 [25, 25] over 22 runs of 2 seeds at 11 batch sizes, "
                                       "11 more left out")
    assert "of the 400 draws, in which the statistic is not defined, are left out" in result["detail"]


def test_one_seed_has_no_resamples():
    result = noise_scale_test(noise_of(lambda b, s: 25.0, seeds=[0]), steps_of([50.0]), 3.0, n_boot=100)
    assert result["verdict"] == "inconclusive" and result["note"] == "fewer than 2 seeds measured"
    assert math.isnan(result["low"]) and math.isnan(result["high"])


def test_two_seeds_are_enough_for_a_verdict_on_the_ratio():
    result = noise_scale_test(noise_of(lambda b, s: 25.0, seeds=[0, 1]), steps_of([50.0] * 2), 3.0, n_boot=100)
    assert result["verdict"] == "replicated" and result["note"] == ""
    assert result["low"] == pytest.approx(0.5) and result["high"] == pytest.approx(0.5)


def test_one_seed_measured_of_three():
    noise = noise_of(lambda b, s: 25.0, seeds=[0])
    result = noise_scale_test(noise, steps_of([50.0] * 3), 3.0, n_boot=100)
    assert result["verdict"] == "inconclusive" and result["note"] == "fewer than 2 seeds measured"


def test_a_flagged_b_crit_gives_no_ratio():
    result = noise_scale_test(noise_of(lambda b, s: 25.0), steps_of([600.0] * 3), 3.0, n_boot=50)
    assert result["verdict"] == "inconclusive" and result["note"] == "B_crit not measured"
    assert math.isnan(result["estimate"]) and all(math.isnan(v) for v in result["seed_values"])


def test_b_crit_flagged_in_about_half_the_draws_is_an_unknown_ratio_there():
    b_crits = [100.0, 120.0, 140.0, 400.0, 500.0]
    result = noise_scale_test(noise_of(lambda b, s: 25.0, seeds=range(5)), steps_of(b_crits), 3.0, n_boot=200)
    flagged = flagged_share(result)
    assert math.isfinite(result["estimate"]) and math.isnan(result["low"])
    assert f"{round(2 * flagged)} of the 200 draws have no value" in result["detail"]


def test_a_draw_without_b_simple_has_no_ratio_even_where_b_crit_is_flagged():
    """Seeds 3 and 4 (B_crit 400 and 500) have no B_simple: a draw of them alone has no ratio at all, though its
    B_crit is flagged too, so it is left out rather than counted as an unknown value."""
    noise = noise_of(lambda b, s: 25.0, seeds=range(3))
    result = noise_scale_test(noise, steps_of([100.0, 120.0, 140.0, 400.0, 500.0]), 3.0, n_boot=400)
    assert result["n_units"] == 3
    assert re.search(r"; [1-9]\d* of the 400 draws, in which the statistic is not defined, are left out", result["detail"])


def test_no_gradient_statistics_say_none_were_used():
    result = noise_scale_test(noise_of(lambda b, s: 25.0).iloc[:0], steps_of([50.0] * 3), 3.0, n_boot=50)
    assert "(checkpoints used, by fraction of training: none; " in result["detail"]
    assert result["detail"].startswith("B_simple at the target not measured over 0 runs")
    assert "nan" not in result["detail"]  # no checkpoint, so no distance from the crossing to state


def test_the_ratio_default_is_2000_draws_from_a_fixed_seed():
    rng = np.random.default_rng(8)
    noise = noise_of(lambda b, s: 25.0 * math.exp(0.2 * rng.normal()))
    steps = steps_of([40.0, 50.0, 60.0])
    default, explicit = noise_scale_test(noise, steps, 3.0), noise_scale_test(noise, steps, 3.0, 2000)
    assert (default["low"], default["high"]) == (explicit["low"], explicit["high"])


# ---------------------------------------------------------------- SeedFit


def test_seed_labels_are_found_by_position_and_unknown_ones_refused():
    fit = b_crit_of_seeds(steps_of([24.0] * 3).assign(seed=lambda t: t["seed"] * 10 + 10))  # seeds 10, 20, 30
    assert fit.columns(np.array([30, 10])).tolist() == [2, 0]
    with pytest.raises(ValueError, match=re.escape("seeds [7] have no steps to target")):
        fit.columns(np.array([10, 7]))
    assert fit.draws(np.empty((0, 3), dtype=int), np.random.default_rng(0)).shape == (0,)


def test_steps_that_cannot_be_fitted_give_no_draws():
    fit = b_crit_of_seeds(steps_of([24.0] * 3, sizes=[1.0, 2.0]))
    assert np.isnan(fit.residuals).all() and len(fit.residuals) == 2
    assert np.isnan(fit.draws(np.zeros((4, 3), dtype=int), np.random.default_rng(0))).all()


def test_the_fits_leverages_are_those_of_a_line_in_its_share():
    """At the fit, d log S / d log B_crit = x = B_crit / (B + B_crit), so with log S_min the Jacobian is that of a
    straight line in x: h = 1/n + (x - mean x)^2 / sum (x - mean x)^2."""
    x = 24.0 / (SIZES + 24.0)
    expected = 1 / len(x) + (x - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum()
    assert b_crit_of_seeds(steps_of([24.0] * 3)).leverages == pytest.approx(expected, rel=1e-6)


def test_a_seed_missing_at_a_batch_size_leaves_the_others_mean_there():
    """Three seeds on the same curve, seed 2 not reaching the target at B = 4: every draw's mean is on the curve."""
    steps = steps_of([24.0] * 3)
    steps.loc[(steps["seed"] == 2) & (steps["batch_size"] == 4), "reached"] = False
    fit = b_crit_of_seeds(steps)
    draws = fit.draws(np.array([[0, 1, 2], [2, 2, 0], [1, 2, 2]]), np.random.default_rng(0))
    assert draws == pytest.approx([24.0] * 3, rel=1e-6)


def test_b_crit_does_not_depend_on_the_unit_of_the_steps():
    """Steps counted in thousands (below 1 from B = 32 on) give the same B_crit in every draw."""
    fit = b_crit_of_seeds(steps_of([24.0] * 3, s_min=0.1))
    assert fit.draws(np.array([[0, 1, 2], [2, 2, 0]]), np.random.default_rng(0)) == pytest.approx([24.0] * 2, rel=1e-6)


# ---------------------------------------------------------------- profile_b_crit


def test_a_curve_without_a_regime_change_ends_at_the_grids_edge():
    """Steps proportional to 1/B (B_crit beyond any size) end at 4 e-folds above the largest size, and steps the
    same at every size (B_crit below any size) at 4 e-folds below the smallest (above: within the grid's 0.1 step)."""
    sizes = np.array([1.0, 4.0, 16.0, 64.0])
    b_crit, _ = profile_b_crit(sizes, np.log(np.array([1000.0 / sizes, np.full(4, 50.0)])))
    assert 64 * math.exp(3.9) <= b_crit[0] <= 64 * math.exp(4) and b_crit[1] == pytest.approx(math.exp(-4), rel=1e-6)


def test_the_grid_reaches_exactly_four_e_folds_above_when_it_lands_there():
    """Sizes from 1 to e^2: the grid of 0.1 steps from -4 lands exactly on 6 = log e^2 + 4, and holds that end."""
    sizes = np.exp(np.array([0.0, 0.5, 1.0, 1.5, 2.0]))
    b_crit, _ = profile_b_crit(sizes, np.log(1000.0 / sizes))
    assert b_crit[0] == pytest.approx(math.exp(6.0), rel=1e-6)


def test_three_batch_sizes_are_enough_and_the_fit_is_exact_to_the_grids_precision():
    b_crits = np.exp(np.linspace(1.0, 4.0, 25))
    rows = np.log(100 * (1 + b_crits[:, None] / SIZES))
    b_crit, rmse = profile_b_crit(SIZES, rows)
    assert b_crit == pytest.approx(b_crits, rel=3e-8) and rmse == pytest.approx(np.zeros(25), abs=1e-6)
    assert profile_b_crit(SIZES[:3], np.log(100 * (1 + 2 / SIZES[:3])))[0] == pytest.approx([2.0], rel=1e-6)
    _, short = profile_b_crit(SIZES[:2], np.log([[3.0, 2.0]]))
    assert np.isnan(short).all()


# ---------------------------------------------------------------- the parts and their changes


def test_the_parts_are_integer_labels_and_a_size_at_the_midpoint_is_in_the_lower_half():
    """B_crit 16 on 1 .. 64: the midpoint sqrt(16) = 4 is itself a batch size, in the lower half."""
    parts = regime_parts(np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]), 16.0)
    assert parts.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert np.bincount(parts.ravel()).tolist() == [3, 2, 2]


def test_the_changes_are_relative_to_the_whole_regime():
    """Lower half 1, upper half 3 (reference 2), above 5: (3 - 1)/2 = 1 and (5 - 2)/2 = 1.5."""
    low, above = regime_changes(np.array([[1.0, 3.0, 5.0]]), np.array([[0, 1, 2]]), 1.0)
    assert low.tolist() == [1.0] and above.tolist() == [1.5]


def test_the_spread_within_parts_widens_each_part_by_its_own_k():
    """Part 0 of 2 sizes (k/(k - 1) = 2), part 1 of one (unchanged), part 2 of 3 (1.5), one NaN size (unchanged)."""
    full = np.array([[1.0, 3.0, 10.0, 4.0, 5.0, 9.0, np.nan]])
    parts = np.array([[0, 0, 1, 2, 2, 2, 2]])
    out = _spread_within_parts(np.zeros((1, 7)), full, parts)
    # part 0: centre 2, deviations -1, 1 moved once more; part 2: centre 6, deviations -2, -1, 3 moved by half again
    assert out[0, :6].tolist() == [-1.0, 1.0, 0.0, -1.0, -0.5, 1.5] and out[0, 6] == 0.0


def test_an_interval_needs_both_ends():
    assert _interval(1.0, 2.0, ".3g") == "[1, 2]"
    assert _interval(1.0, math.nan, ".3g") == _interval(math.nan, 2.0, ".3g") == "(no interval)"


def test_a_metric_without_a_finite_run_is_inconclusive_for_want_of_runs():
    """Every run diverged: no batch size has a value, so there are no parts and no B_crit to read; the claim is
    inconclusive and says why, where regime_parts used to raise on the empty batch sizes."""
    table = pd.DataFrame({"batch_size": [1, 2, 4], "seed": [0, 0, 0], "val_loss": [np.nan, np.inf, np.nan]})
    result = degradation_test(table, "val_loss", 20.0, 0.05)
    assert result["verdict"] == "inconclusive" and result["n_units"] == 0
    assert "no runs" in result["detail"]


def test_one_seed_has_no_resamples_and_says_so_not_that_b_crit_was_flagged_in_them():
    """With one seed nothing is resampled: the detail says so, and no note claims B_crit was flagged in every draw."""
    table = pd.DataFrame({"batch_size": [1, 2, 4, 8, 16, 32, 64], "seed": [0] * 7,
                          "val_loss": [1.0, 1.0, 1.01, 1.0, 1.2, 1.3, 1.5]})
    result = degradation_test(table, "val_loss", 10.0, 0.05)
    assert "no resamples of 1 seed" in result["detail"] and "flagged" not in result["note"]
    assert result["verdict"] == "inconclusive" and result["estimate"] == pytest.approx((4 / 3 - 1.0025) / 1.0025, rel=1e-9)
