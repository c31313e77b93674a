"""Known answers for the samples-seen claim (batchlab.analysis.samples_claim): the exponent c of batch size in the
clock the curves collapse onto, its standard error with the batch sizes as units, and the verdicts."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from batchlab.analysis.samples_claim import (
    cubic_design, exponent_se, fit_exponent, samples_exponent, samples_predict_test, tost_p, weighted_r2,
)

SIZES = [1, 2, 4, 8, 16, 32]


def curves(log_loss_of, seeds: int = 3, size_effect=None, seed_sd: float = 0.0, seed: int = 0, sizes=SIZES,
           points: int = 7) -> pd.DataFrame:
    """`points` logged points per run of an equal-samples budget of 8192; log loss log_loss_of(step, batch size), plus
    an offset per batch size shared by its seeds (size_effect[i]) and noise per point."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, b in enumerate(sizes):
        for step in np.geomspace(10, 8192 / b, points).round():
            for s in range(seeds):
                shared = 0.0 if size_effect is None else size_effect[i]
                rows.append({"batch_size": b, "seed": s, "step": step, "samples_seen": step * b,
                             "val_loss": np.exp(log_loss_of(step, b) + shared + seed_sd * rng.normal())})
    return pd.DataFrame(rows)


def seed_means(table: pd.DataFrame) -> pd.DataFrame:
    return table.groupby(["batch_size", "step", "samples_seen"], as_index=False)["val_loss"].mean()


def test_weighted_r2_is_the_r2_of_a_polynomial_fit_on_the_repeated_points():
    """Integer weights repeat points; np.polyfit on the repeated points, an independent least-squares fit, gives the
    same R² (rel 1e-9), and a draw left with fewer distinct x than terms fits their means exactly."""
    rng = np.random.default_rng(3)
    x = np.exp(rng.uniform(0, 4, 30))
    y = rng.normal(size=(25, 30))
    w = rng.integers(0, 3, (25, 30)).astype(float)
    got = weighted_r2(cubic_design(np.log(x)), y, w)
    for row in range(25):
        lx, ly = np.repeat(np.log(x), w[row].astype(int)), np.repeat(y[row], w[row].astype(int))
        fit = np.polyval(np.polyfit(lx, ly, 3), lx)
        assert got[row] == pytest.approx(1 - ((ly - fit) ** 2).sum() / ((ly - ly.mean()) ** 2).sum(), rel=1e-9)
    # a cubic over 4 distinct x, drawn with only two of them: the best any function of two values can do, their group
    # means (1 and 6): R² = 1 - 4/34
    x4 = np.array([1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 4.0])
    y4 = np.array([[0.0, 2.0, 5.0, 6.0, 7.0, 9.0, 1.0]])
    drawn = np.array([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    assert weighted_r2(cubic_design(np.log(x4)), y4, drawn)[0] == pytest.approx(1 - 4 / 34, rel=1e-9)


@pytest.mark.parametrize("c", [0.0, 0.5, 1.0, 1.3])
def test_the_exponent_is_found_on_curved_noiseless_curves(c):
    """Log loss a curved function (not a power law) of log(step × B^c): the fitted c is the planted one within 0.03."""
    table = curves(lambda s, b: 0.5 * np.log(1 + 1e4 / (s * b**c)) - 0.05 * np.log(s * b**c) ** 1.5 / 10, seeds=1,
                   points=12)
    got = samples_exponent(table, "val_loss")
    assert got["exponent"] == pytest.approx(c, abs=0.03)
    clock = "samples_seen" if c == 1.0 else "step" if c == 0.0 else None
    if clock:
        assert got[clock] == pytest.approx(1.0, abs=1e-3)


def test_the_exponent_is_unidentified_with_one_batch_size():
    table = seed_means(curves(lambda s, b: -0.3 * np.log(s * b), sizes=[4], seeds=1))
    y = np.log(table["val_loss"].to_numpy())[None, :]
    assert np.isnan(fit_exponent(np.log(table["step"].to_numpy()), np.log(table["batch_size"].to_numpy()), y,
                                 np.ones_like(y))[0])


def test_the_standard_error_is_the_regression_of_each_batch_sizes_shift_on_log_b():
    """A power law with an offset per batch size: c's standard error is that of the ordinary least-squares slope of
    the offsets on -0.3 log B (scipy.stats.linregress), since the cubic is then a straight line."""
    offsets = np.array([0.08, -0.05, 0.02, 0.11, -0.09, 0.01])
    table = seed_means(curves(lambda s, b: -0.3 * np.log(s * b), size_effect=offsets, seeds=1))
    y = np.log(table["val_loss"].to_numpy())
    c = samples_exponent(table, "val_loss")["exponent"]
    se, df = exponent_se(table, y, c)
    reference = stats.linregress(-0.3 * np.log(SIZES), offsets)
    assert df == 4
    assert se == pytest.approx(reference.stderr, rel=0.05)
    assert c == pytest.approx(1 + reference.slope, abs=0.02)


def test_the_interval_covers_the_planted_exponent_at_its_level():
    """300 simulated studies, each batch size's curve shifted by N(0, 0.1): the 95% interval holds c = 1 in 95%
    (binomial SD 1.3%: within 91% to 98.5%)."""
    rng = np.random.default_rng(7)
    base = seed_means(curves(lambda s, b: -0.3 * np.log(s * b), seeds=1))
    log_step, log_b = np.log(base["step"].to_numpy()), np.log(base["batch_size"].to_numpy())
    _, size_of = np.unique(log_b, return_inverse=True)
    clean = np.log(base["val_loss"].to_numpy())
    y = clean + 0.1 * rng.standard_normal((300, len(SIZES)))[:, size_of] + 0.02 * rng.standard_normal((300, len(clean)))
    fitted = fit_exponent(log_step, log_b, y, np.ones_like(y))
    t = stats.t.ppf(0.975, len(SIZES) - 2)
    covered = [abs(c - 1) <= t * exponent_se(base, row, c)[0] for c, row in zip(fitted, y)]
    assert 0.91 <= np.mean(covered) <= 0.985


def test_samples_set_the_loss_replicated_steps_not_replicated_noise_inconclusive():
    offsets = [0.02, -0.01, 0.015, -0.02, 0.01, 0.0]
    by_samples = samples_predict_test(curves(lambda s, b: -0.3 * np.log(s * b), size_effect=offsets, seed_sd=0.02),
                                      "val_loss", 0.5)
    by_steps = samples_predict_test(curves(lambda s, b: -0.3 * np.log(s), size_effect=offsets, seed_sd=0.02),
                                    "val_loss", 0.5)
    assert by_samples["verdict"] == "replicated" and 0.5 < by_samples["low"] < 1 < by_samples["high"] < 1.5
    assert by_steps["verdict"] == "not replicated" and by_steps["high"] < 0.5
    assert by_samples["p_value"] < 0.05 < by_steps["p_value"]
    noise = samples_predict_test(curves(lambda s, b: 0.0 * s, size_effect=[0.3, -0.2, 0.1, -0.3, 0.2, 0.0],
                                        seed_sd=0.3), "val_loss", 0.5)
    assert noise["verdict"] == "inconclusive"


def test_an_effect_shared_by_a_batch_sizes_seeds_is_not_averaged_away_by_more_seeds():
    """The same shifts per batch size, seen by 3 or by 30 seeds: the interval is as wide either way, since the batch
    sizes, not the seeds, are the units."""
    offsets = [0.1, -0.1, 0.05, 0.1, -0.05, -0.1]
    few = samples_predict_test(curves(lambda s, b: -0.3 * np.log(s * b), seeds=3, size_effect=offsets), "val_loss", 0.5)
    many = samples_predict_test(curves(lambda s, b: -0.3 * np.log(s * b), seeds=30, size_effect=offsets), "val_loss", 0.5)
    assert many["high"] - many["low"] == pytest.approx(few["high"] - few["low"], rel=1e-6)
    assert many["high"] - many["low"] > 0.3


def test_seed_order_changes_nothing_and_too_few_batch_sizes_give_no_interval():
    table = curves(lambda s, b: -0.3 * np.log(s * b), size_effect=[0.02, -0.01, 0.015, -0.02, 0.01, 0.0], seed_sd=0.05)
    result = samples_predict_test(table, "val_loss", 0.5)
    shuffled = samples_predict_test(table.assign(seed=table["seed"].map({0: 2, 1: 0, 2: 1})), "val_loss", 0.5)
    assert shuffled["estimate"] == pytest.approx(result["estimate"], rel=1e-12)
    assert shuffled["low"] == pytest.approx(result["low"], rel=1e-12)
    two = samples_predict_test(table[table["batch_size"] <= 2], "val_loss", 0.5)
    assert two["verdict"] == "inconclusive" and math.isnan(two["low"])


def test_tost_p_is_the_larger_one_sided_p():
    assert tost_p(1.0, 0.1, 4, 0.5, 1.5) == pytest.approx(stats.t.sf(5.0, 4), rel=1e-12)
    assert tost_p(0.6, 0.1, 4, 0.5, 1.5) == pytest.approx(stats.t.sf(1.0, 4), rel=1e-12)
    assert tost_p(0.4, 0.1, 4, 0.5, 1.5) > 0.5
