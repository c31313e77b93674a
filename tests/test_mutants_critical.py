"""The critical-batch table of a study worked out by hand, on the paths the noiseless study of
test_known_answers_critical.py does not take: a baseline_fraction target on train_loss, crossings placed between
logged points, a capped run, flagged estimates, a rate check that finds B_crit rate-limited, and a checkpoint
fraction measured in one run only."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.cbs import bootstrap_fit
from batchlab.analysis.critical import analyse, with_caps
from batchlab.config import StepsToTarget

SIZES = (1, 2, 4, 8, 16, 32, 64)  # reach the target; 128 is capped at step 10
FACTORS = (1.0, 1.1, 0.9)  # per seed: steps f S(B); their mean is 1, so the seed means are S(B) itself
LOGGED = (1, 10, 100, 1000, 10000)


def s_of(b, b_crit=40.0):
    return 100.0 * (1 + b_crit / b)


def study():
    """train_loss = 2 + ln(f S(B) / step), logged at powers of ten: linear in ln(step), so the crossing of 2 placed
    linearly in log(step) between the bracketing points is f S(B) exactly (S(B) is never a logged step). The best
    final loss is seed 2's at B = 64, 2 + ln(0.9 x 162.5 / 10^4), and the baseline is 4 minus it: half the
    improvement below the baseline is then the target 2."""
    curves, target_runs = [], []
    for seed, f in enumerate(FACTORS):
        for b in (*SIZES, 128):
            steps = np.array([t for t in LOGGED if b < 128 or t <= 10], dtype=float)
            curves.append(pd.DataFrame({"batch_size": b, "seed": seed, "step": steps,
                                        "train_loss": 2 + np.log(f * s_of(b) / steps)}))
            target_runs.append({"batch_size": b, "seed": seed, "base_lr": 0.01, "rate_check_base_lr": 0.04,
                                "rate_check_steps": f * s_of(b, b_crit=160.0)})
    noise = pd.DataFrame([
        {"batch_size": 1, "seed": 0, "fraction": 0.5, "step": 4000, "b_simple": 7.0},  # the only run at 0.5
        {"batch_size": 1, "seed": 0, "fraction": 1.0, "step": 10000, "b_simple": 3.0},
        {"batch_size": 2, "seed": 0, "fraction": 1.0, "step": 10000, "b_simple": np.nan},
    ]).assign(method="two_batch", eval_loss=0.5)
    baseline = 4 - (2 + math.log(0.9 * s_of(64) / 1e4))
    return pd.concat(curves, ignore_index=True), noise, pd.DataFrame(target_runs), baseline


SPEC = StepsToTarget(metric="train_loss", kind="baseline_fraction", value=0.5, interpolate=True, bootstrap=50)
REGIMES = ("the batch sizes that reached the target do not span both regimes: 5 at or below B_crit/2 = 20 and 0 at "
           "or above 2B_crit = 80 (the rule asks for 2 of each)")
LIMITED = ("rate-limited: refitted with the same seeds at 4x the rate, B_crit moves from 40 to 160, more than 2x: the "
           "fixed rate binds (McCandlish et al. tune it per batch size)")


def test_a_study_with_a_capped_run_and_a_rate_limited_b_crit():
    curves, noise, target_runs, baseline = study()
    steps, table = analyse(curves, noise, SPEC, baseline=baseline, target_runs=target_runs)

    # steps: interpolated crossings (without interpolation they would be the next logged step, 1000 or 10000)
    reached = steps[steps["batch_size"] < 128]
    expected = [f * s_of(b) for b, f in zip(reached["batch_size"], [FACTORS[s] for s in reached["seed"]])]
    assert reached["steps"].tolist() == pytest.approx(expected, rel=1e-9)
    assert steps["target"].tolist() == pytest.approx([2.0] * 24, rel=1e-12)
    assert (steps["metric"] == "train_loss").all()
    # B = 128 stopped at step 10 without reaching: below S_min = 100, which no batch size beats
    capped = steps[steps["batch_size"] == 128]
    assert not capped["reached"].any() and capped["last_step"].tolist() == [10, 10, 10]
    assert capped["cap_below_s_min"].all() and not reached["cap_below_s_min"].any()

    assert list(table.index) == list(range(len(table)))
    assert list(table.columns) == ["quantity", "estimate", "low", "high", "level", "n_boot", "n_boot_ok", "n_excluded",
                                   "rmse_log", "method", "definition", "flag", "rate_limited", "target", "metric",
                                   "baseline"]
    rows = table.set_index("quantity")
    assert list(rows.index) == ["s_min", "b_crit", "b_20", "b_20_empirical", "b_crit_rate_check", "b_simple@0.5",
                                "b_simple@1", "b_simple_at_target"]
    assert rows.loc["s_min", "estimate"] == pytest.approx(100.0, rel=1e-6)
    assert rows.loc["b_crit", "estimate"] == pytest.approx(40.0, rel=1e-6)
    assert rows.loc["b_20", "estimate"] == pytest.approx(8.0, rel=1e-6)
    # perfect scaling from B0 = 1 (4100 steps): 600 <= 1.2 x 512.5 at B = 8, 350 > 1.2 x 256.25 at B = 16
    assert rows.loc["b_20_empirical", "estimate"] == 8.0
    assert rows.loc["b_crit_rate_check", "estimate"] == pytest.approx(160.0, rel=1e-6)
    assert rows.loc[["s_min", "b_crit", "b_20", "b_20_empirical"], "method"].tolist() == [
        "S(B) fit (McCandlish)", "S(B) fit (McCandlish)", "S(B) fit, 20% rule (Zhang)", "model-free 20% rule (Zhang)"]
    assert rows.loc[["s_min", "b_crit", "b_20", "b_20_empirical"], "definition"].tolist() == [
        "S_min: steps at infinite batch", "B_crit = E_min / S_min", "B_20 = B_crit / 5",
        "largest B within 1.2x perfect scaling"]
    # reached: 1 .. 64. B_crit = 40 has none at or above 80; B_20 = 8 is read at 5 B_20, the same 40
    assert rows.loc["s_min", "flag"] == "" and rows.loc["b_20_empirical", "flag"] == ""
    assert rows.loc["b_crit", "flag"] == REGIMES + "; " + LIMITED
    assert rows.loc["b_20", "flag"] == REGIMES + "; " + LIMITED
    assert rows.loc["b_crit_rate_check", "rate_limited"] == LIMITED

    # the fit's rows are bootstrap_fit's on these steps with 50 draws from default_rng(0): reproducible
    reference = bootstrap_fit(steps, n_boot=50, rng=np.random.default_rng(0)).set_index("quantity")
    fitted = rows.loc[["s_min", "b_crit", "b_20", "b_20_empirical"]]
    assert (fitted["n_boot"] == 50).all()
    for column in ("low", "high"):
        assert fitted[column].tolist() == pytest.approx(reference[column].tolist(), rel=1e-12, nan_ok=True)
    assert 90.0 <= fitted.loc["s_min", "low"] < fitted.loc["s_min", "high"] <= 110.0  # seed means 0.9 .. 1.1 x 100

    half = rows.loc["b_simple@0.5"]
    assert {k: half[k] for k in ("estimate", "low", "high", "n_boot_ok", "n_excluded", "method", "definition",
                                 "flag")} == {
        "estimate": 7.0, "low": 7.0, "high": 7.0, "n_boot_ok": 0, "n_excluded": 0,
        "method": "gradient noise scale (two_batch)",
        "definition": "B_simple = tr(Sigma)/|G|^2 at 50% of training: median, min-max over runs", "flag": ""}
    assert math.isnan(half["level"]) and math.isnan(half["rmse_log"])
    assert tuple(rows.loc["b_simple@1", ["estimate", "n_excluded"]]) == (3.0, 1)

    assert table["target"].tolist() == pytest.approx([2.0] * len(table), rel=1e-12)
    assert (table["metric"] == "train_loss").all()
    assert table["baseline"].tolist() == [baseline] * len(table)


def test_a_run_whose_cap_equals_s_min_could_have_reached():
    """A cap of exactly S_min steps is not below it: the run had as many steps as the largest batch needs."""
    steps = pd.DataFrame({"batch_size": [8, 16], "seed": [0, 0], "steps": [np.nan, np.nan], "reached": [False, False]})
    curves = pd.DataFrame({"batch_size": [8, 16], "seed": [0, 0], "step": [600, 599]})
    assert with_caps(steps, curves, s_min=600.0)["cap_below_s_min"].tolist() == [False, True]


def test_without_interpolation_a_crossing_is_the_first_logged_step_at_the_target():
    curves, noise, _, baseline = study()
    spec = SPEC.model_copy(update={"interpolate": False, "bootstrap": 0})
    steps, _ = analyse(curves, noise.iloc[:0], spec, baseline=baseline)
    # f S(B) from 146 (0.9 x 162.5 at B = 64) to 4510 (1.1 x 4100 at B = 1): logged next at 1000 or 10000; at B = 4
    # seeds 0 and 1 cross at 1100 and 1210, seed 2 at 990
    expected = {1: [10000.0] * 3, 2: [10000.0] * 3, 4: [10000.0, 10000.0, 1000.0], 8: [1000.0] * 3, 16: [1000.0] * 3,
                32: [1000.0] * 3, 64: [1000.0] * 3}
    for b, want in expected.items():
        assert steps.loc[steps["batch_size"] == b, "steps"].tolist() == want
