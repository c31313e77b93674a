"""The spread-shape test against answers known without running it: exact broken sticks in log-log, whose fit is
worked out by hand, two seeds offset by +-d (run SD sqrt(2) d, a seed mean's SD d), the simulated p-value in its
limits (1/(n_sim + 1) when no straight power law comes near the observed T, 1/2 for a straight power law by
symmetry, 1 when every simulation ties with it), the line slope's bootstrap spread in closed form, and the
verdict at each edge of its rule (the edge passed as min_effect or alpha, so that it is met exactly)."""

import math

import numpy as np
import pytest
from scipy.stats import t

from batchlab.analysis.spread_shape import _run_sd, flattening_test, knee_fit

B = 2.0 ** np.arange(8)  # 1 .. 128
LN2 = math.log(2.0)


def stick(before, after, knee=8.0):
    """log spread = before x ln(B / knee) up to the knee, after x ln(B / knee) beyond it."""
    return np.where(B <= knee, before * np.log(B / knee), after * np.log(B / knee))


def seeds(y, d=0.02):
    return np.column_stack([y + d, y - d])


def test_knee_fit_of_four_exact_points():
    # u = log2 B = 0..3, log spread = -0.5 ln2 x (0, 1, 2, 2): a knee at B = 4, slopes -0.5 and 0. The line through
    # v = (0, -0.5, -1, -1) on u: slope cov/var = -1.75 / 5 = -0.35, intercept -0.625 + 0.35 x 1.5 = -0.1, residuals
    # (0.1, -0.05, -0.2, 0.15), rss 0.075; in natural logs the intercept and rss carry ln2 and ln2^2
    fit = knee_fit([0, 1, 2, 3], -0.5 * LN2 * np.array([0, 1, 2, 2]))
    assert sorted(fit) == sorted(["knee", "knee_log2", "level", "slope_before", "slope_after", "rss", "line_slope",
                                  "line_intercept", "line_rss", "n"])
    assert fit["knee"] == pytest.approx(4.0, rel=1e-12) and fit["knee_log2"] == pytest.approx(2.0, rel=1e-12)
    assert fit["level"] == pytest.approx(-LN2, rel=1e-12)
    assert fit["slope_before"] == pytest.approx(-0.5, rel=1e-12) and fit["slope_after"] == pytest.approx(0, abs=1e-12)
    assert fit["rss"] == pytest.approx(0, abs=1e-20)
    assert fit["line_slope"] == pytest.approx(-0.35, rel=1e-12)
    assert fit["line_intercept"] == pytest.approx(-0.1 * LN2, rel=1e-12)
    assert fit["line_rss"] == pytest.approx(0.075 * LN2**2, rel=1e-12)
    assert fit["n"] == 4


def test_a_knee_at_the_second_batch_size_is_found():
    # (0, 1, 1, 1): the knee at u = 1, the first interior size; the line's slope is -0.75 / 5 = -0.15
    fit = knee_fit([0, 1, 2, 3], -0.5 * LN2 * np.array([0, 1, 1, 1]))
    assert fit["knee"] == pytest.approx(2.0, rel=1e-12) and fit["slope_before"] == pytest.approx(-0.5, rel=1e-12)
    assert fit["line_slope"] == pytest.approx(-0.15, rel=1e-12)


@pytest.mark.parametrize(("sizes", "spread", "message"), [
    ([0, 1, 2], [0.0, 0.0, 0.0], "a broken stick needs at least 4 batch sizes, got 3"),
    ([0, 1, 2, np.inf], [0.0, 0.0, 0.0, 0.0], "batch sizes must be finite and distinct"),
    ([0, 1, 1, 2], [0.0, 0.0, 0.0, 0.0], "batch sizes must be finite and distinct"),
    ([0, 1, 2, 3], [0.0, 0.0, np.nan, 0.0], "log spread must be finite"),
])
def test_knee_fit_refuses_what_it_cannot_fit(sizes, spread, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        knee_fit(sizes, spread)


def test_run_sd_from_the_residuals_when_one_seed_leaves_no_spread():
    one_seed = np.zeros((6, 1))
    counts = np.ones(6)
    # 6 - 4 = 2 degrees of freedom: sqrt((1 + 1 + 1 + 1) / 2)
    sd, source, df = _run_sd(one_seed, np.zeros(6), counts, np.array([1.0, -1.0, 1.0, -1.0, 0.0, 0.0]))
    assert sd == pytest.approx(math.sqrt(2.0), rel=1e-12) and (source, df) == ("residuals", 2)
    # 5 - 4 = 1: sqrt((1 + 1) / 1)
    sd, source, df = _run_sd(one_seed[:5], np.zeros(5), counts[:5], np.array([1.0, -1.0, 0.0, 0.0, 0.0]))
    assert sd == pytest.approx(math.sqrt(2.0), rel=1e-12) and (source, df) == ("residuals", 1)
    sd, source, df = _run_sd(one_seed[:4], np.zeros(4), counts[:4], np.zeros(4))
    assert math.isnan(sd) and (source, df) == ("none", 0)
    # two seeds at +-1 around each of 4 means: 8 squares of 1 over 4 degrees of freedom, sqrt(2), above no residual
    sd, source, df = _run_sd(np.array([[1.0, -1.0]] * 4), np.zeros(4), np.full(4, 2), np.zeros(4))
    assert sd == pytest.approx(math.sqrt(2.0), rel=1e-12) and (source, df) == ("seed-to-seed", 4)


def expect_nan(result, keys):
    for key in keys:
        assert math.isnan(result[key]), key


def test_fewer_than_four_batch_sizes_give_the_empty_result():
    # batch size 0 is left out (no log), and so is a size no seed measured: 3 remain
    sizes = [0, 1, 2, 4, 8]
    spread = [[0.0, 0.1], [0.0, 0.1], [-0.3, -0.4], [-0.7, -0.6], [np.nan, np.nan]]
    result = flattening_test(sizes, spread)
    assert sorted(result) == sorted(["statistic", "estimate", "low", "high", "p_value", "knee", "slope_before",
                                     "slope_after", "line_slope", "run_sd", "level", "n_sim", "n_x", "n_units",
                                     "n_seeds", "at_smallest", "at_largest", "verdict", "detail"])
    expect_nan(result, ["estimate", "low", "high", "p_value", "knee", "slope_before", "slope_after", "line_slope",
                        "run_sd", "at_smallest", "at_largest"])
    assert {k: result[k] for k in ("statistic", "n_sim", "n_x", "n_units", "n_seeds", "verdict", "detail")} == {
        "statistic": "spread_knee", "n_sim": 0, "n_x": 3, "n_units": 3, "n_seeds": 2, "verdict": "inconclusive",
        "detail": "only 3 batch sizes have a finite spread; a knee needs at least 4"}
    assert result["level"] == pytest.approx(0.9, rel=1e-12)  # 1 - 2 alpha
    assert flattening_test(sizes, spread, alpha=0.1)["level"] == pytest.approx(0.8, rel=1e-12)


def test_one_seed_at_four_batch_sizes_leaves_no_noise_estimate():
    # the four points of test_knee_fit_of_four_exact_points, one seed given as a 1-D row
    result = flattening_test([1, 2, 4, 8], -0.5 * LN2 * np.array([0, 1, 2, 2]))
    assert result["verdict"] == "inconclusive" and result["detail"] == (
        "no estimate of the noise: one seed and 4 batch sizes leave no degrees of freedom beyond the broken stick's four")
    assert result["estimate"] == pytest.approx(0.5, rel=1e-12)  # T = 0 - (-0.5)
    assert result["knee"] == pytest.approx(4.0, rel=1e-12)
    assert result["slope_before"] == pytest.approx(-0.5, rel=1e-12) and result["slope_after"] == pytest.approx(0, abs=1e-12)
    assert result["line_slope"] == pytest.approx(-0.35, rel=1e-12)
    assert result["at_smallest"] == pytest.approx(1.0, rel=1e-12) and result["at_largest"] == pytest.approx(0.5, rel=1e-12)
    assert result["level"] == pytest.approx(0.9, rel=1e-12)
    assert (result["n_x"], result["n_units"], result["n_seeds"], result["n_sim"]) == (4, 4, 1, 0)
    expect_nan(result, ["low", "high", "p_value", "run_sd"])


def test_rows_and_batch_sizes_must_agree():
    with pytest.raises(ValueError, match="^4 batch sizes but 3 rows of log spread$"):
        flattening_test([1, 2, 4, 8], np.zeros((3, 2)))


def test_a_clear_knee_is_replicated_with_the_smallest_p_and_the_line_slopes_closed_form_spread():
    result = flattening_test(B, seeds(stick(-0.5, 0.0)), n_sim=1999)
    assert result["verdict"] == "replicated"
    # T = 0.5 while a straight power law's T has an SD near 0.02: no simulation reaches it, p = 1 / (1999 + 1)
    assert result["p_value"] == pytest.approx(1 / 2000, rel=1e-12) and result["n_sim"] == 1999
    assert result["run_sd"] == pytest.approx(0.02 * math.sqrt(2), rel=1e-9)
    # each drawn seed mean has SD 0.02 times sqrt(8 / chi2_8) (the run SD drawn from its 8 seed-to-seed degrees of
    # freedom), so the line slope is 0.02 / sqrt(sum (ln B - mean)^2) = 0.02 / (ln2 sqrt(42)) times a t variable with
    # 8 degrees of freedom, and the 90% interval spans +-t_0.95,8 = 1.860 of it (2000 draws: within 10%; a fixed SD,
    # +-1.645, lies outside)
    half = (result["line_high"] - result["line_low"]) / 2
    assert half == pytest.approx(t.ppf(0.95, 8) * 0.02 / (LN2 * math.sqrt(42)), rel=0.1)
    for key in ("before_low", "before_high", "line_low", "line_high"):
        assert isinstance(result[key], float) and math.isfinite(result[key]), key
    assert result["before_low"] < -0.5 < result["before_high"] < 0
    assert result["detail"].startswith("the spread falls, then levels off: knee at B ≈ 8, slope -0.5 before [")
    assert "(90% parametric bootstrap)" in result["detail"]
    assert "reaches T in p = 0.0005 of 1999 simulations; run SD 0.0283 (seed-to-seed, 8 degrees of freedom, its uncertainty simulated too); 8 batch sizes, 2 seeds; " \
           "m = 0.25, α = 0.05" in result["detail"]


def test_a_straight_power_law_reaches_its_own_t_half_the_time():
    # T of a straight line is 0, and a line plus noise e has T(e), as likely as T(-e) = -T(e): p = 1/2
    result = flattening_test(B, seeds(-0.5 * np.log(B), d=0.05), n_sim=1999)
    assert result["p_value"] == pytest.approx(0.5, abs=0.04)
    assert result["verdict"] == "not replicated" and result["detail"].startswith("T lies within ±0.25: one power law")


def test_every_simulation_ties_with_a_straight_line_without_noise():
    # identical seeds on an exact line: run SD ~1e-15, every simulated T equals the observed ~0 up to rounding
    y = -0.5 * np.log(B)
    assert flattening_test(B, np.column_stack([y, y]), n_sim=99)["p_value"] == 1.0


def test_a_knee_too_shallow_after_is_inconclusive():
    # slopes -0.6 then -0.3: T = 0.3 >= m, but |slope_after| > m; T's interval lies above m, so not one power law
    result = flattening_test(B, seeds(stick(-0.6, -0.3)), n_sim=1999)
    assert 0.25 < result["low"] < 0.3 < result["high"]
    # the seed means are the stick itself: 8^0.6 at B = 1 and 16^-0.3 at B = 128 (64 gives 8^-0.3)
    assert result["at_smallest"] == pytest.approx(8**0.6, rel=1e-12)
    assert result["at_largest"] == pytest.approx(16**-0.3, rel=1e-12)
    assert result["verdict"] == "inconclusive"
    assert result["detail"].startswith("neither a knee nor one power law is shown: knee at B ≈ 8")


def test_rising_spread_is_not_replicated_and_the_detail_says_where():
    # level, then rising: the line's slope is positive, the slope before the knee is not
    rises = flattening_test(B, seeds(stick(0.0, 0.5)), n_sim=1999)
    assert rises["line_low"] > 0 > rises["before_low"]
    assert rises["verdict"] == "not replicated" and rises["detail"].startswith("the spread rises: knee at B ≈ 8")
    # rising, then falling as steeply: the line's slope is negative, the slope before the knee positive
    up_down = flattening_test(B, seeds(stick(0.5, -0.5)), n_sim=1999)
    assert up_down["line_high"] < 0 < up_down["before_low"]
    assert up_down["verdict"] == "not replicated"
    assert up_down["detail"].startswith("the spread rises up to the knee: knee at B ≈ 8")


def test_the_rule_at_its_edges():
    knee = seeds(stick(-0.5, 0.0))
    # p = 1 / 20 = alpha exactly: p <= alpha
    assert flattening_test(B, knee, n_sim=19)["verdict"] == "replicated"
    # T = m exactly: T >= m
    t_obs = flattening_test(B, knee, n_sim=1999)["estimate"]
    assert flattening_test(B, knee, n_sim=1999, min_effect=t_obs)["verdict"] == "replicated"
    # |slope_after| = m exactly: |slope_after| <= m
    steep = seeds(stick(-0.75, -0.25))
    after = flattening_test(B, steep, n_sim=1999)["slope_after"]
    assert flattening_test(B, steep, n_sim=1999, min_effect=abs(after))["verdict"] == "replicated"
    # T's interval within (-m, m), open at both ends: an end equal to m or -m is not within it
    line = seeds(-0.5 * np.log(B), d=0.05)
    for seed in (0, 1):
        result = flattening_test(B, line, n_sim=1999, seed=seed)
        edge = max(-result["low"], result["high"])  # seed 0: the lower end is the wider, seed 1: the upper
        assert flattening_test(B, line, n_sim=1999, seed=seed, min_effect=edge)["verdict"] == "inconclusive"


def test_the_defaults_are_2000_simulations_from_seed_0():
    line = seeds(-0.5 * np.log(B), d=0.05)
    default, seeded = flattening_test(B, line), flattening_test(B, line, n_sim=2000, seed=0)
    assert default["n_sim"] == 2000 and (default["low"], default["high"]) == (seeded["low"], seeded["high"])
    assert flattening_test(B, seeds(stick(-0.5, 0.0)))["p_value"] == pytest.approx(1 / 2001, rel=1e-12)
