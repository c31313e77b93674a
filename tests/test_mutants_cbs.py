"""The S(B) fit, the model-free 20% rule and the seed bootstrap at their edges, with answers worked out by hand:
samples to target, points the fit must drop (steps of 0, a batch size of 0), the 20% rule exactly at 1.2x and with
two batch sizes, the interval's level, and which generator a given rng means."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.cbs import bootstrap_fit, empirical_b20, fit_steps_model, steps_table


def test_steps_table_counts_samples_as_steps_times_the_batch_size():
    curves = pd.DataFrame({"batch_size": [4, 4, 8, 8], "seed": [0, 0, 0, 0], "step": [10, 20, 10, 20],
                           "val_loss": [2.0, 1.0, 3.0, 2.5]})
    table = steps_table(curves, "val_loss", 1.0, interpolate=False)
    assert table["steps"].tolist()[0] == 20.0 and table["samples"].tolist()[0] == 80.0
    assert table["reached"].tolist() == [True, False]
    empty = steps_table(curves.iloc[:0], "val_loss", 1.0)
    assert empty.empty and list(empty.columns) == ["batch_size", "seed", "steps", "samples", "reached"]


def test_the_fitted_samples_are_e_min_plus_s_min_times_b():
    # S(B) = 100 (1 + 8/B): samples B S(B) = 100 B + 800, i.e. E_min (1 + B / B_crit) with E_min = 800
    sizes = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    fit = fit_steps_model(sizes, 100 * (1 + 8 / sizes))
    assert fit.samples([1, 8, 64]) == pytest.approx([900.0, 1600.0, 7200.0], rel=1e-9)
    assert fit.e_min == pytest.approx(800.0, rel=1e-9)


def test_the_fit_drops_steps_of_zero_or_less_and_batch_sizes_of_zero():
    # exact S(B) = 100 (1 + 8/B) at 1, 2, 4; the other points are not steps to a target and must not move it
    fit = fit_steps_model([1, 2, 4, 8, 16, 0], [900.0, 500.0, 300.0, 0.0, -5.0, 700.0])
    assert fit.s_min == pytest.approx(100.0, rel=1e-9) and fit.b_crit == pytest.approx(8.0, rel=1e-9)
    assert fit.n_points == 3


def test_the_fit_keeps_steps_below_one():
    # S(B) = 0.1 (1 + 8/B): 0.9, 0.5, 0.3 steps (a time unit, not a count) are still steps
    fit = fit_steps_model([1, 2, 4], [0.9, 0.5, 0.3])
    assert fit.s_min == pytest.approx(0.1, rel=1e-9) and fit.b_crit == pytest.approx(8.0, rel=1e-9)


def test_the_fit_refuses_lengths_that_differ():
    with pytest.raises(ValueError, match=r"^batch_sizes and steps differ in length: \(3,\) vs \(2,\)$"):
        fit_steps_model([1, 2, 4], [1.0, 2.0])


def test_the_twenty_percent_rule_at_exactly_1_2x_and_with_two_batch_sizes():
    # perfect scaling from 100 steps at B = 1 gives 50 at B = 2, and 1.2 x 50 = 60: 60 steps still qualify
    assert empirical_b20([1, 2, 4], [100.0, 60.0, 100.0]) == 2.0
    assert empirical_b20([1, 2], [100.0, 55.0]) == 2.0  # two batch sizes are enough
    assert empirical_b20([1, 2], [100.0, 61.0]) == 1.0
    # a batch size of 0 is no batch size: B0 is 1
    assert empirical_b20([0, 1, 2], [10.0, 100.0, 55.0]) == 2.0


def seed_table(factors=(1.0, 1.2, 0.8, 1.1), sizes=(1, 2, 4, 8, 16)) -> pd.DataFrame:
    """Seed s takes f_s x 100 (1 + 8 / B) steps at every batch size, plus a wobble per (size, seed) so that the
    resampled B_crit varies too."""
    rows = []
    for s, f in enumerate(factors):
        for i, b in enumerate(sizes):
            wobble = 1 + 0.05 * ((i + s) % 3 - 1)
            rows.append({"batch_size": b, "seed": s, "steps": f * wobble * 100 * (1 + 8 / b), "reached": True})
    return pd.DataFrame(rows)


def ends(table):
    return table[["low", "high"]].to_numpy().ravel().tolist()


def test_which_generator_an_rng_means():
    table = seed_table()
    zero = ends(bootstrap_fit(table, n_boot=40, rng=np.random.default_rng(0)))
    assert ends(bootstrap_fit(table, n_boot=40)) == zero  # None: default_rng(0)
    assert ends(bootstrap_fit(table, n_boot=40, rng=0)) == zero
    five = ends(bootstrap_fit(table, n_boot=40, rng=5))
    assert five == ends(bootstrap_fit(table, n_boot=40, rng=np.random.default_rng(5)))  # a seed: default_rng(seed)
    assert five != zero  # the draws differ, so the check above is not empty


def test_the_default_is_1000_draws():
    assert (bootstrap_fit(seed_table())["n_boot"] == 1000).all()


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1])
def test_the_level_lies_strictly_between_0_and_1(level):
    with pytest.raises(ValueError, match=f"^level must lie in \\(0, 1\\), got {level}$"):
        bootstrap_fit(seed_table(), n_boot=5, level=level)


def test_a_table_the_fit_cannot_use_has_rmse_nan():
    table = seed_table(sizes=(1, 2))  # two batch sizes: no S(B) fit
    rows = bootstrap_fit(table, n_boot=5).set_index("quantity")
    assert all(math.isnan(v) for v in rows["rmse_log"])
    assert math.isnan(rows.loc["b_crit", "estimate"]) and rows.loc["b_20_empirical", "estimate"] == 2.0
