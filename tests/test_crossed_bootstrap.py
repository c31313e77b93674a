"""Batch sizes resampled with the seeds: the pigeonhole bootstrap, the wild bootstrap of the S(B) fit, and the two
claims that use them, against answers computed here by other means (closed forms, sums, the package's reference fit)."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.cbs import fit_steps_model
from batchlab.analysis.b_crit_claims import b_crit_of_seeds, degradation_test, noise_scale_test, profile_b_crit
from batchlab.analysis.resampling import (
    counts, crossed_mean, leverage, pigeonhole_draws, seed_draws, small_sample_spread, wild_log_steps,
)

SIZES = 2.0 ** np.arange(11)


def test_pigeonhole_variance_of_a_crossed_table_mean_matches_its_closed_form():
    """Rows and columns drawn independently with replacement: the mean's variance over the draws is
    sum (row mean - grand)^2 / R^2 + sum (column mean - grand)^2 / C^2 + sum interaction^2 / (RC)^2 (Owen 2007),
    computed here with loops over the cells."""
    rng = np.random.default_rng(3)
    rows, cols = 6, 5
    table = rng.normal(size=(rows, 1)) + 0.5 * rng.normal(size=(1, cols)) + 0.3 * rng.normal(size=(rows, cols))
    grand = sum(sum(r) for r in table.tolist()) / (rows * cols)
    row_mean = [sum(table[i, j] for j in range(cols)) / cols for i in range(rows)]
    col_mean = [sum(table[i, j] for i in range(rows)) / rows for j in range(cols)]
    inter = sum((table[i, j] - row_mean[i] - col_mean[j] + grand) ** 2 for i in range(rows) for j in range(cols))
    closed = (sum((m - grand) ** 2 for m in row_mean) / rows**2 + sum((m - grand) ** 2 for m in col_mean) / cols**2
              + inter / (rows * cols) ** 2)
    n_boot = 200_000
    draw = np.random.default_rng(0)
    means = crossed_mean(table, counts(seed_draws(rows, n_boot, draw), rows), counts(seed_draws(cols, n_boot, draw), cols))
    assert means.mean() == pytest.approx(grand, abs=4 * math.sqrt(closed / n_boot))
    assert means.var() == pytest.approx(closed, rel=0.02)  # Monte Carlo SE of a variance over 200,000 draws: ~0.4%
    # a seed-only draw (rows fixed) sees the column part alone: the per-row effects are invisible to it
    seed_only = crossed_mean(table, np.ones((n_boot, rows)), counts(seed_draws(cols, n_boot, draw), cols))
    assert seed_only.var() == pytest.approx(sum((m - grand) ** 2 for m in col_mean) / cols**2, rel=0.02)


def test_pigeonhole_draws_stay_within_each_group_and_draw_its_members_evenly():
    """Groups that differ between rows (as the batch sizes below and above a B_crit that moves with the draw):
    every slot draws from its own group only, each member 1/k of the time."""
    groups = np.array([[0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2], [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]])
    picked = pigeonhole_draws(np.tile(groups, (20_000, 1)), np.random.default_rng(1))
    for row, labels in enumerate(groups):
        mine = picked[row::2]
        assert (labels[mine] == labels).all()
        for g in np.unique(labels):
            members = np.flatnonzero(labels == g)
            share = np.bincount(mine[:, members].ravel(), minlength=len(labels))[members] / mine[:, members].size
            assert share == pytest.approx(np.full(len(members), 1 / len(members)), abs=0.01)
    with pytest.raises(ValueError, match="non-decreasing"):
        pigeonhole_draws(np.array([[0, 1, 0]]), np.random.default_rng(0))


def test_the_vectorised_s_b_fit_is_the_reference_fit():
    """profile_b_crit minimises the same least squares as cbs.fit_steps_model (Levenberg-Marquardt), also with
    batch sizes left out (NaN): the same B_crit and RMS log residual."""
    rng = np.random.default_rng(2)
    rows, reference = [], []
    for _ in range(40):
        b_crit = math.exp(rng.uniform(0.5, 6))
        steps = 500 * (1 + b_crit / SIZES) * np.exp(0.1 * rng.standard_normal(len(SIZES)))
        steps[rng.random(len(SIZES)) < 0.15] = np.nan
        rows.append(np.log(steps))
        reference.append(fit_steps_model(SIZES, steps))
    b_crit, rmse = profile_b_crit(SIZES, np.array(rows))
    assert b_crit == pytest.approx([f.b_crit for f in reference], rel=1e-4)
    assert rmse == pytest.approx([f.rmse_log for f in reference], abs=1e-6)
    assert np.isnan(profile_b_crit(SIZES[:3], np.log([[3.0, 2.0, np.nan]]))[0][0])


def exact_steps(b_crit: float, seed_factors) -> pd.DataFrame:
    """Steps to target exactly on S(B) = 100 (1 + B_crit / B), each seed's scaled by its own factor."""
    return pd.DataFrame([{"batch_size": b, "seed": s, "steps": f * 100 * (1 + b_crit / b), "reached": True}
                         for s, f in enumerate(seed_factors) for b in SIZES])


def test_a_wild_bootstrap_of_an_exact_curve_returns_the_exact_b_crit_in_every_draw():
    """Seeds that differ by a factor only: any seed mean lies on the same curve shape, every residual is 0, and
    every draw (seeds and signs) refits B_crit = 24 exactly."""
    fit = b_crit_of_seeds(exact_steps(24.0, [0.8, 1.0, 1.1, 1.3, 0.9]))
    draws = fit.draws(fit.seeds[seed_draws(5, 500, np.random.default_rng(0))], np.random.default_rng(1))
    assert draws == pytest.approx(np.full(500, 24.0), rel=1e-6)
    assert fit.residuals == pytest.approx(np.zeros(len(SIZES)), abs=1e-9)


def test_wild_draws_flip_each_residual_divided_by_one_minus_its_leverage():
    """A point's log steps in a draw: the drawn seeds' value with its residual r replaced by +-r / (1 - h)."""
    residuals = np.array([0.1, -0.2, 0.0, 0.05])
    h = np.array([0.5, 0.2, 0.9, 0.25])
    out = wild_log_steps(np.zeros((2, 4)), residuals, np.array([[1, 1, 1, 1], [-1, -1, -1, -1.0]]), h)
    assert out[0] == pytest.approx(residuals / (1 - h) - residuals)
    assert out[1] == pytest.approx(-residuals / (1 - h) - residuals)


def test_leverage_of_a_straight_line_fit():
    """For y = a + b x: h_i = 1/n + (x_i - mean x)^2 / sum (x - mean x)^2; a point left out (NaN) has none."""
    x = np.array([0.0, 1.0, 2.0, 4.0, 9.0])
    expected = 1 / len(x) + (x - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum()
    assert leverage(np.column_stack([np.ones_like(x), x])) == pytest.approx(expected)
    with_gap = leverage(np.column_stack([np.ones(6), np.append(x, np.nan)]))
    assert with_gap[:5] == pytest.approx(expected) and np.isnan(with_gap[5])


def test_small_sample_spread_divides_each_units_deviation_by_one_minus_its_leverage():
    """Units (rows) with means 1, 2, 6 (centre 3): deviations -2, -1, 3 become -3, -1.5, 4.5 (k/(k - 1) = 1.5); the
    columns' differences within a unit stay."""
    values = np.array([[0.0, 2.0], [2.0, 2.0], [5.0, 7.0]])
    out = small_sample_spread(values)
    assert out.mean(axis=1) == pytest.approx([0.0, 1.5, 7.5])
    assert out[:, 1] - out[:, 0] == pytest.approx(values[:, 1] - values[:, 0])


def test_the_wild_bootstrap_spread_of_b_crit_matches_its_spread_over_repeated_studies():
    """Per-batch-size effects on the steps shared by every seed (SD 0.1 in log), no seed noise: a seed draw alone
    sees no spread in B_crit. Over 12 studies the wild draws' variance of log B_crit averages at least 0.8 and at
    most twice the variance of log B_crit over 300 repeated studies (fitted by the reference fit): on the wide side."""
    rng = np.random.default_rng(4)
    truth = [math.log(fit_steps_model(SIZES, 100 * (1 + 32 / SIZES) * np.exp(0.1 * rng.standard_normal(11))).b_crit)
             for _ in range(300)]
    variances = []
    for study in range(12):
        effect = np.exp(0.1 * rng.standard_normal(len(SIZES)))
        steps = pd.DataFrame([{"batch_size": b, "seed": s, "steps": 100 * (1 + 32 / b) * e, "reached": True}
                              for s in range(5) for b, e in zip(SIZES, effect)])
        fit = b_crit_of_seeds(steps)
        draws = fit.draws(fit.seeds[seed_draws(5, 600, np.random.default_rng(study))], np.random.default_rng(99))
        variances.append(np.var(np.log(draws[np.isfinite(draws)])))
    assert 0.8 * np.var(truth) < np.mean(variances) < 2 * np.var(truth)
    assert min(variances) > 0


def test_a_planted_per_batch_size_effect_widens_the_linear_scaling_interval_to_its_standard_error():
    """Every seed the same (a seed bootstrap sees nothing), the regime flat at 1.0 and the 5 batch sizes above
    B_crit = 20 at 1.3 plus their own effects x: the interval of the change above is about +-1.96 sqrt(5/4) standard
    errors sd(x) / sqrt(5) wide (the textbook standard error of a mean of 5, widened by k/(k - 1) in variance)."""
    effects = {64: 0.03, 128: -0.05, 256: 0.02, 512: 0.06, 1024: -0.01}
    sizes = [1, 2, 4, 8, 16, 64, 128, 256, 512, 1024]
    table = pd.DataFrame([{"batch_size": b, "seed": s, "val_loss": 1.0 if b <= 16 else 1.3 + effects[b]}
                          for b in sizes for s in range(5)])
    result = degradation_test(table, "val_loss", 20.0, 0.05, n_boot=20_000)
    x = np.array(list(effects.values()))
    se = float(np.std(x, ddof=1) / math.sqrt(len(x)) * math.sqrt(5 / 4))
    assert result["estimate"] == pytest.approx(0.3 + x.mean())
    assert (result["high"] - result["low"]) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert result["verdict"] == "replicated"


def test_a_planted_per_batch_size_effect_widens_the_noise_scale_interval_to_its_standard_error():
    """Steps exactly on S(B) with B_crit 32 (B_crit the same in every draw), B_simple the same for every seed but
    with an effect per batch size: the log interval of the ratio is about +-1.96 sqrt(11/10) sd(log B_simple) / sqrt(11)."""
    rng = np.random.default_rng(5)
    log_effect = 0.2 * rng.standard_normal(len(SIZES))
    steps = exact_steps(32.0, [1.0] * 5)
    noise = pd.DataFrame([{"batch_size": b, "seed": s, "fraction": 1.0, "step": int(100 * (1 + 32 / b)),
                           "b_simple": 64 * math.exp(e), "b_simple_log_se": 0.0}
                          for s in range(5) for b, e in zip(SIZES, log_effect)])
    result = noise_scale_test(noise, steps, 3.0, n_boot=4000)
    se = float(np.std(log_effect, ddof=1) / math.sqrt(len(SIZES)) * math.sqrt(11 / 10))
    assert result["estimate"] == pytest.approx(2 * math.exp(log_effect.mean()), rel=1e-6)
    assert math.log(result["high"] / result["low"]) == pytest.approx(2 * 1.96 * se, rel=0.1)
