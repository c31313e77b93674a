"""Known answers for the samples-seen claim's crossed bootstrap (batchlab.analysis.samples_claim): seeds crossed with
batch sizes, each drawn batch size bringing its whole curve."""

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from batchlab.analysis.resampling import counts, percentile_interval, seed_draws
from batchlab.analysis.samples_claim import crossed_leads, samples_advantage, samples_predict_test, weighted_abs_rho

SIZES = [1, 2, 4, 8, 16, 32]


def curves(log_loss_of, seeds: int = 5, size_effect=None, seed_sd: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """7 logged points per run of an equal-samples budget; log loss from log_loss_of(samples, step), plus an offset per
    batch size shared by its seeds (size_effect[i]) and seed noise per point."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, b in enumerate(SIZES):
        for step in np.geomspace(10, 8192 / b, 7).round():
            for s in range(seeds):
                shared = 0.0 if size_effect is None else size_effect[i]
                rows.append({"batch_size": b, "seed": s, "step": step, "samples_seen": step * b,
                             "val_loss": np.exp(log_loss_of(step * b, step) + shared + seed_sd * rng.normal())})
    return pd.DataFrame(rows)


def grid_of(table: pd.DataFrame):
    g = table.pivot_table(index=["batch_size", "step", "samples_seen"], columns="seed", values="val_loss")
    return g.index.to_frame(index=False), g.to_numpy()


def test_weighted_rho_is_spearman_on_the_repeated_points():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 5, (40, 10)).astype(float), rng.integers(0, 4, (40, 10)).astype(float)
    w = rng.integers(0, 3, (40, 10)).astype(float)
    got = weighted_abs_rho(x, y, w)
    for row in range(40):
        xs, ys = np.repeat(x[row], w[row].astype(int)), np.repeat(y[row], w[row].astype(int))
        ref = abs(spearmanr(xs, ys).statistic) if len(xs) >= 3 and np.ptp(xs) and np.ptp(ys) else np.nan
        assert np.isclose(got[row], ref, equal_nan=True, atol=1e-12)


def test_a_draw_of_every_seed_and_every_batch_size_once_is_the_estimate():
    table = curves(lambda n, s: -0.3 * np.log(n), seed_sd=0.05, size_effect=[0.1, -0.1, 0.05, 0.0, -0.05, 0.1])
    points, values = grid_of(table)
    drawn = crossed_leads(points, values, np.array([[4, 3, 2, 1, 0]]), np.ones((1, len(SIZES))))
    point = samples_advantage(points.assign(val_loss=values.mean(axis=1)), "val_loss")
    for key in point:
        assert np.isclose(drawn[key][0], point[key], atol=1e-12)
    doubled = crossed_leads(points, values, np.array([[0, 0, 1, 2, 3]]), np.ones((1, len(SIZES))))
    assert not np.isclose(doubled["over_steps"][0], point["over_steps"])


def test_an_effect_shared_by_a_batch_sizes_seeds_widens_the_interval_that_seeds_alone_would_collapse():
    """Every seed the same curve, each batch size offset by its own effect: a draw of seeds alone is the estimate in every
    draw; drawing batch sizes too gives an interval around it and no verdict from these 6 batch sizes."""
    effect = [0.3, -0.3, 0.2, -0.2, 0.3, -0.1]
    table = curves(lambda n, s: -0.15 * np.log(n) - 0.15 * np.log(s), size_effect=effect)
    points, values = grid_of(table)
    rng = np.random.default_rng(1)
    seeds_only = crossed_leads(points, values, seed_draws(5, 50, rng), np.ones((50, len(SIZES))))
    assert np.ptp(seeds_only["over_steps"]) < 1e-12
    result = samples_predict_test(table, "val_loss", n_boot=400)
    assert result["high"] - result["low"] > 0.1 and result["low"] < result["estimate"] < result["high"]
    assert result["verdict"] == "inconclusive"


def test_without_a_batch_size_effect_or_seed_noise_samples_lead_in_every_draw():
    """The loss a function of samples seen alone, the same for every seed: |ρ| against samples is 1 in every draw, and
    both leads' intervals lie above 0."""
    result = samples_predict_test(curves(lambda n, s: -0.3 * np.log(n)), "val_loss", n_boot=300)
    assert result["verdict"] == "replicated" and result["low"] > 0
    assert "|ρ| vs samples 1.000" in result["detail"]
    assert result["seed_values"] == [result["estimate"]] * 5


def test_each_draws_deviation_is_widened_by_k_over_k_minus_one_and_the_draws_are_reproducible():
    table = curves(lambda n, s: -0.3 * np.log(n), seed_sd=0.1, size_effect=[0.05, -0.05, 0.1, 0.0, -0.1, 0.05])
    result = samples_predict_test(table, "val_loss", n_boot=300)
    assert samples_predict_test(table, "val_loss", n_boot=300) == result
    points, values = grid_of(table)
    rng = np.random.default_rng(0)
    cols = seed_draws(5, 300, rng)
    raw = crossed_leads(points, values, cols, counts(seed_draws(len(SIZES), 300, rng), len(SIZES)))
    point = samples_advantage(points.assign(val_loss=values.mean(axis=1)), "val_loss")
    weaker = min(("over_steps", "over_batch"), key=point.get)
    low, high = percentile_interval(raw[weaker], 0.95)
    k = len(SIZES)
    assert np.isclose(result["low"], point[weaker] + k / (k - 1) * (low - point[weaker]))
    assert np.isclose(result["high"], point[weaker] + k / (k - 1) * (high - point[weaker]))
