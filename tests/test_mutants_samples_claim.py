"""Known answers for the samples-seen claim (batchlab.analysis.samples_claim) where mutation testing found gaps: the
weighted R² with missing values and at its minimum count, the exponent between grid points and beyond the grid, two
batch sizes, the standard error on a curved curve against an independent fit, the claim's whole result on a worked
case, its verdicts at the edges of the band, the TOST p at zero standard error, and the regime's texts."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from batchlab.analysis.samples_claim import (
    below_b_crit, cubic_design, exponent_se, fit_exponent, samples_exponent, samples_predict_test, tost_p, weighted_r2,
)

SIZES = [1, 2, 4, 8, 16, 32]


def table(log_loss_of, sizes=SIZES, seeds: int = 1, points: int = 7, first: float = 10.0, size_effect=None,
          seed_sd: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Curves of an equal-samples budget of 8192: `points` steps from `first` per run, log loss log_loss_of(step, B),
    plus an offset per batch size shared by its seeds and normal noise per point."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, b in enumerate(sizes):
        for step in np.geomspace(first, 8192 / b, points).round():
            for s in range(seeds):
                shift = 0.0 if size_effect is None else size_effect[i]
                rows.append({"batch_size": b, "seed": s, "step": step, "samples_seen": step * b,
                             "val_loss": math.exp(log_loss_of(step, b) + shift + seed_sd * rng.normal())})
    return pd.DataFrame(rows)


def polyfit_r2(x, y, degree=3):
    """R² of numpy's least-squares polynomial, the independent reference."""
    fit = np.polyval(np.polyfit(x, y, degree), x)
    return 1 - ((y - fit) ** 2).sum() / ((y - y.mean()) ** 2).sum()


def test_weighted_r2_leaves_out_missing_values_and_needs_three_items_that_vary():
    rng = np.random.default_rng(11)
    x = np.log(np.geomspace(1, 1000, 12))
    y = rng.normal(size=12)
    y[[2, 7]] = np.nan
    kept = np.isfinite(y)
    got = weighted_r2(cubic_design(x), y[None, :], np.ones((1, 12)))[0]
    assert got == pytest.approx(polyfit_r2(x[kept], y[kept]), rel=1e-9)
    # three items counted (four terms): fitted exactly, R² 1; two items: no R²; a y that does not vary: no R²
    three = np.where(np.arange(12) < 3, 1.0, 0.0)[None, :]
    assert weighted_r2(cubic_design(x), rng.normal(size=(1, 12)), three)[0] == pytest.approx(1.0, rel=1e-9)
    two = np.where(np.arange(12) < 2, 1.0, 0.0)[None, :]
    assert math.isnan(weighted_r2(cubic_design(x), rng.normal(size=(1, 12)), two)[0])
    assert math.isnan(weighted_r2(cubic_design(x), np.full((1, 12), 0.7), np.ones((1, 12)))[0])


def test_a_cubic_over_four_distinct_values_fits_their_means():
    """x takes 4 values, 3 times each: a cubic passes through the 4 group means, so R² = 1 - within / total."""
    x = np.repeat(np.log([1.0, 2.0, 4.0, 8.0]), 3)
    y = np.array([0.0, 1.0, 2.0, 5.0, 5.0, 8.0, 1.0, 1.0, 4.0, 9.0, 7.0, 8.0])
    within = sum(((g - g.mean()) ** 2).sum() for g in y.reshape(4, 3))
    total = ((y - y.mean()) ** 2).sum()
    assert weighted_r2(cubic_design(x), y[None, :], np.ones((1, 12)))[0] == pytest.approx(1 - within / total, rel=1e-9)


@pytest.mark.parametrize("c", [-0.93, 0.53, 0.81, 1.27, 2.12, 2.93])
def test_an_exponent_between_grid_points_is_found_by_the_parabola(c):
    """A power law in step × B^c with c off the grid of 0.05: its residual share is quadratic in the distance from c to
    leading order, so the parabola through the best grid point and its neighbours recovers c within 0.002 (the grid
    point alone is up to 0.025 away)."""
    got = samples_exponent(table(lambda s, b: -0.3 * np.log(s * b**c)), "val_loss")["exponent"]
    assert got == pytest.approx(c, abs=0.002)


@pytest.mark.parametrize("c, end", [(3.4, 3.0), (-1.3, -1.0)])
def test_an_exponent_beyond_the_grid_is_the_grids_end(c, end):
    assert samples_exponent(table(lambda s, b: -0.3 * np.log(s * b**c)), "val_loss")["exponent"] == end


def test_two_batch_sizes_identify_the_exponent_and_one_with_values_does_not():
    two = table(lambda s, b: -0.3 * np.log(s * b**0.7), sizes=[2, 16])
    log_step, log_b = np.log(two["step"].to_numpy()), np.log(two["batch_size"].to_numpy())
    y = np.log(two["val_loss"].to_numpy())[None, :]
    assert fit_exponent(log_step, log_b, y, np.ones_like(y))[0] == pytest.approx(0.7, abs=0.002)
    # the same two curves with every value of batch size 16 missing: one batch size counts, c is unidentified
    missing = np.where(two["batch_size"].to_numpy() == 16, np.nan, y)
    assert math.isnan(fit_exponent(log_step, log_b, missing, np.ones_like(y))[0])


def reference_se(points: pd.DataFrame, y: np.ndarray, c: float) -> float:
    """The linearised standard error by other routes: numpy's cubic in the raw clock and its derivative (np.polyder),
    the means per batch size, and scipy's regression of the mean residuals on the mean shifts."""
    log_b = np.log(points["batch_size"].to_numpy(dtype=float))
    x = np.log(points["step"].to_numpy(dtype=float)) + c * log_b
    coef = np.polyfit(x, y, 3)
    frame = pd.DataFrame({"b": log_b, "e": y - np.polyval(coef, x), "d": np.polyval(np.polyder(coef), x) * log_b})
    means = frame.groupby("b").mean()
    return stats.linregress(means["d"], means["e"]).stderr


@pytest.mark.parametrize("sizes", [SIZES, [2, 8, 32]])
def test_the_standard_error_on_a_curved_curve_matches_an_independent_fit(sizes):
    """A curved log loss (not a power law), runs starting at different steps (so each batch size's mean residual is not
    linear in log B), an offset per batch size, and c taken off the fit (0.9): the standard error is the reference's
    to 1e-7, with k - 2 degrees of freedom (one for 3 batch sizes)."""
    offsets = [0.05, -0.03, 0.02, 0.06, -0.04, 0.01][: len(sizes)]
    curve = table(lambda s, b: 0.5 * np.log(1 + 1e4 / (s * b)), sizes=sizes, first=3.0, points=9,
                  size_effect=offsets)
    curve = curve[~((curve["batch_size"] == sizes[1]) & (curve["step"] < 20))]  # one size starts later
    y = np.log(curve["val_loss"].to_numpy())
    se, df = exponent_se(curve, y, 0.9)
    assert df == len(sizes) - 2
    assert se == pytest.approx(reference_se(curve, y, 0.9), rel=1e-7)


def test_the_standard_error_needs_three_batch_sizes():
    two = table(lambda s, b: -0.3 * np.log(s * b), sizes=[2, 8])
    se, df = exponent_se(two, np.log(two["val_loss"].to_numpy()), 1.0)
    assert math.isnan(se) and df == 0


def test_a_loss_of_zero_is_left_out_as_missing():
    curve = table(lambda s, b: 0.5 * np.log(1 + 1e4 / (s * b)))
    zero = curve.copy()
    zero.loc[3, "val_loss"] = 0.0
    assert samples_exponent(zero, "val_loss") == pytest.approx(samples_exponent(curve.drop(index=3), "val_loss"),
                                                               rel=1e-12)


def worked_case() -> pd.DataFrame:
    """Three seeds of samples-set curves with an offset per batch size, noise per point, a train_loss column beside
    the metric, and a fourth seed's run at batch size 8 that diverged (every value NaN)."""
    curve = table(lambda s, b: 0.5 * np.log(1 + 1e4 / (s * b)), seeds=3, size_effect=[0.04, -0.02, 0.03, -0.05, 0.02,
                  0.0], seed_sd=0.02, seed=3)
    curve["train_loss"] = curve["val_loss"] * 0.5 + 1.0
    diverged = curve[(curve["batch_size"] == 8) & (curve["seed"] == 0)].assign(seed=3, val_loss=np.nan)
    return pd.concat([curve, diverged], ignore_index=True)


def test_the_claims_result_on_a_worked_case():
    """Every key of the result at level 0.9: the estimate is the exponent of the seed-mean curves, the seeds' values
    each seed's own, the interval c ± t(0.95, 4) × SE, the p-value the larger one-sided t test against 0.5 and 1.5,
    and the detail's R² those of numpy's cubic in the log of each clock (the ends: the next test)."""
    curve = worked_case()
    result = samples_predict_test(curve, "val_loss", 0.5, level=0.9)
    seeds = curve[np.isfinite(curve["val_loss"])]
    means = seeds.groupby(["batch_size", "step", "samples_seen"], as_index=False)["val_loss"].mean()
    c = samples_exponent(means, "val_loss")["exponent"]
    per_seed = [samples_exponent(seeds[seeds["seed"] == s], "val_loss")["exponent"] for s in range(3)]
    y = np.log(means["val_loss"].to_numpy())
    se = reference_se(means, y, c)
    t = stats.t.ppf(0.95, 4)
    p = max(stats.t.sf((c - 0.5) / se, 4), stats.t.sf((1.5 - c) / se, 4))
    r2 = [polyfit_r2(np.log(means[col].to_numpy(dtype=float)), y) for col in ("samples_seen", "step", "batch_size")]
    assert 0.5 < c - t * se and c + t * se < 1.5  # the premise of "replicated"
    expected = {
        "statistic": "samples_exponent", "seed_values": pytest.approx(per_seed, rel=1e-9),
        "estimate": pytest.approx(c, rel=1e-12), "low": pytest.approx(c - t * se, rel=1e-6),
        "high": pytest.approx(c + t * se, rel=1e-6), "p_value": pytest.approx(p, rel=1e-5), "n_boot": 0, "n_x": 6,
        "n_units": 3, "n_excluded_runs": 1, "min_effect": 0.5,
        "interval_kind": "t interval over 6 batch sizes", "verdict": "replicated",
    }
    assert {k: v for k, v in result.items() if k not in ("detail", "at_smallest", "at_largest")} == expected
    assert result["detail"] == (
        f"the log loss follows one curve in log(step × B^c) with c = {c:.2f} (samples seen 1, steps 0; replicated "
        f"within 0.5 to 1.5, TOST p = {result['p_value']:.3g}); R² of one cubic in log samples seen {r2[0]:.3f}, in "
        f"log steps {r2[1]:.3f}, in log batch size {r2[2]:.3f}; seeds: " + ", ".join(f"{v:.2f}" for v in per_seed))


def test_the_ends_are_the_seed_mean_at_the_last_step_whatever_the_order_of_the_rows():
    """at_smallest and at_largest: the metric at the last logged step of batch sizes 1 and 32, the mean over the seeds
    that logged it (the diverged run left out), in any order of the table's rows."""
    curve = worked_case()
    result = samples_predict_test(curve, "val_loss", 0.5)
    for b, key in ((1, "at_smallest"), (32, "at_largest")):
        runs = curve[curve["batch_size"] == b]
        assert result[key] == pytest.approx(runs[runs["step"] == runs["step"].max()]["val_loss"].mean(), rel=1e-12)
    shuffled = samples_predict_test(curve.sample(frac=1.0, random_state=1), "val_loss", 0.5)
    assert (shuffled["at_smallest"], shuffled["at_largest"]) == (result["at_smallest"], result["at_largest"])


def test_verdicts_at_the_edges_of_the_band():
    """An interval across the band's lower edge 0.5 is inconclusive, one wholly above 1.5 not replicated; three batch
    sizes already give an interval (one degree of freedom)."""
    offsets = [0.1, -0.1, 0.05, 0.1, -0.05, -0.1]
    across = samples_predict_test(table(lambda s, b: -0.3 * np.log(s * b**0.5), size_effect=offsets), "val_loss", 0.5)
    assert across["low"] < 0.5 < across["high"] < 1.5 and across["verdict"] == "inconclusive"
    above = samples_predict_test(table(lambda s, b: -0.3 * np.log(s * b**2), size_effect=[0.01, -0.01, 0.0, 0.01,
                                                                                          -0.01, 0.0]), "val_loss", 0.5)
    assert above["low"] > 1.5 and above["verdict"] == "not replicated"
    three = samples_predict_test(table(lambda s, b: -0.3 * np.log(s * b), sizes=[2, 8, 32], size_effect=[0.01, -0.02,
                                                                                                        0.01]),
                                 "val_loss", 0.5)
    assert math.isfinite(three["low"]) and three["low"] < 1 < three["high"] and three["n_x"] == 3


def test_no_finite_value_or_a_flat_loss_is_inconclusive():
    nan = table(lambda s, b: 0.0 * s, sizes=[1, 2, 4], seeds=2).assign(val_loss=np.nan)
    result = samples_predict_test(nan, "val_loss", 0.5)
    assert (result["verdict"], result["n_units"], result["n_x"], result["seed_values"]) == ("inconclusive", 0, 0, [])
    assert math.isnan(result["estimate"]) and math.isnan(result["at_smallest"]) and result["n_excluded_runs"] == 6
    flat = samples_predict_test(nan.assign(val_loss=2.0), "val_loss", 0.5)
    assert flat["verdict"] == "inconclusive" and math.isnan(flat["estimate"]) and math.isnan(flat["low"])


def test_tost_p_at_zero_standard_error_and_when_the_upper_test_decides():
    assert tost_p(1.0, 0.0, 4, 0.5, 1.5) == 0.0
    assert tost_p(0.5, 0.0, 4, 0.5, 1.5) == 1.0 and tost_p(1.5, 0.0, 4, 0.5, 1.5) == 1.0
    assert tost_p(2.0, 0.0, 4, 0.5, 1.5) == 1.0
    assert tost_p(1.4, 0.1, 4, 0.5, 1.5) == pytest.approx(stats.t.sf(1.0, 4), rel=1e-12)


TO_TARGET_SIZES = [2**k for k in range(11)]


def steps_of(b_crit_per_seed, s_min: float = 100.0) -> pd.DataFrame:
    """Steps to target S(B) = S_min (1 + B_crit/B) at batch sizes 1 .. 1024, one B_crit per seed."""
    return pd.DataFrame([{"batch_size": b, "seed": s, "steps": s_min * (1 + bc / b), "reached": True}
                         for s, bc in enumerate(b_crit_per_seed) for b in TO_TARGET_SIZES])


def test_the_regime_in_words_and_what_is_scored_when_it_is_too_small():
    loss = table(lambda s, b: -0.3 * np.log(s * b), sizes=[8, 16, 32, 64])
    whole = (loss, "regime: every batch size", "no steps to target: B_crit, and so the claim's regime, is unknown")
    for steps in (None, steps_of([])):
        got = below_b_crit(loss, steps)
        assert got[0] is loss and got[1:] == whole[1:]
    _, regime, why = below_b_crit(loss, steps_of([20.0] * 4)[lambda t: t["batch_size"] >= 64])
    assert regime == "regime: every batch size" and why.startswith("B_crit, the edge of the claim's regime, is not a "
                                                                   "measurement: ")
    # B_crit 4: no curve's batch size lies in the regime, so the statistic (reported, not scored) is over all of them
    scored, regime, why = below_b_crit(loss, steps_of([4.0] * 4))
    assert scored is loss and regime == "regime: batch sizes at or below B_crit = 4 (none): the statistic is over every " \
                                        "batch size"
    assert why == "0 batch sizes lie at or below B_crit; the claim needs 3"
    # B_crit 20: two of them (8, 16), still too few, and the statistic is over those two
    scored, regime, why = below_b_crit(loss, steps_of([20.0] * 4))
    assert sorted(scored["batch_size"].unique()) == [8, 16] and regime == "regime: batch sizes at or below B_crit = 20 (8, 16)"
    assert why == "2 batch sizes lie at or below B_crit; the claim needs 3"


def test_one_batch_size_explains_nothing_and_leaves_c_unidentified():
    """All points at one batch size: the cubic in its log is a constant, so R² in log batch size is 0, and c is NaN;
    the R² in log steps is numpy's."""
    one = table(lambda s, b: 0.5 * np.log(1 + 1e4 / (s * b)), sizes=[4])
    got = samples_exponent(one, "val_loss")
    assert got["batch_size"] == pytest.approx(0.0, abs=1e-12) and math.isnan(got["exponent"])
    assert got["step"] == pytest.approx(polyfit_r2(np.log(one["step"].to_numpy()), np.log(one["val_loss"].to_numpy())),
                                        rel=1e-9)


def test_a_y_that_varies_by_less_than_1e_12_per_item_does_not_vary():
    """12 items ±1e-7 about 0.7: a total sum of squares of 1.2e-13, below 1e-12 × 12: no R²."""
    x = np.log(np.geomspace(1, 1000, 12))
    y = 0.7 + 1e-7 * np.where(np.arange(12) % 3 == 0, 1.0, -1.0)[None, :]
    assert math.isnan(weighted_r2(cubic_design(x), y, np.ones((1, 12)))[0])


def test_a_row_with_no_r2_gets_no_exponent_beside_one_that_has():
    """Two rows fitted together: a power law in s × B^0.6 and a flat loss (no R² at any c): 0.6 and NaN."""
    curve = table(lambda s, b: -0.3 * np.log(s * b**0.6))
    log_step, log_b = np.log(curve["step"].to_numpy()), np.log(curve["batch_size"].to_numpy())
    y = np.stack([np.log(curve["val_loss"].to_numpy()), np.zeros(len(curve))])
    got = fit_exponent(log_step, log_b, y, np.ones_like(y))
    assert got[0] == pytest.approx(0.6, abs=0.002) and math.isnan(got[1])
