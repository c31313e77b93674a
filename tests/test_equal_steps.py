"""The equal-steps control's claim on run tables whose verdict is known, and the config that asks for it."""

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from batchlab.analysis.claims import evaluate_claims
from batchlab.analysis.equal_steps import advantage_direction, equal_steps_test, trained_sizes
from batchlab.config import Claim, Study

ARM = [32, 64, 128, 256, 512]
SWEEP = [1, 2, 4, 8, 16, *ARM]


def table(sizes, slope: float, seeds: int = 2, metric: str = "val_loss", level: float = 0.1, steps=None) -> pd.DataFrame:
    """Metric = level + slope * log2(B), plus a little per-run noise that keeps the order of the batch sizes."""
    rng = np.random.default_rng(0)
    return pd.DataFrame([
        {"batch_size": b, "seed": s, metric: level + slope * math.log2(b) + 1e-4 * rng.uniform(),
         "steps": steps if steps is not None else max(1, 2048 // b), "diverged": False}
        for b in sizes for s in range(seeds)
    ])


def test_an_advantage_that_reverses_at_equal_steps_vanishes():
    result = equal_steps_test(table(SWEEP, 0.01), table(ARM, -0.01, steps=400), "val_loss")
    # five batch sizes in perfect order each way: the exact one-sided permutation p is 1/5! in both tests
    assert result["verdict"] == "replicated"
    assert result["p_value"] == pytest.approx(1 / math.factorial(5))
    assert result["estimate"] == pytest.approx(-1.0) and result["n_x"] == 5
    assert "400 updates per run" in result["detail"]


def test_an_advantage_that_stays_at_equal_steps_is_not_replicated():
    result = equal_steps_test(table(SWEEP, 0.01), table(ARM, 0.01, steps=400), "val_loss")
    assert result["verdict"] == "not replicated"
    assert result["p_refute"] == pytest.approx(1 / math.factorial(5))


def test_no_advantage_at_equal_epochs_leaves_nothing_to_vanish():
    flat = table(SWEEP, 0.0)
    flat["val_loss"] = 0.1 + np.random.default_rng(1).permutation(len(flat)) * 1e-6  # no order in batch size
    result = equal_steps_test(flat, table(ARM, -0.01, steps=400), "val_loss")
    assert result["verdict"] == "inconclusive" and "none to vanish" in result["detail"]


def test_only_trained_batch_sizes_of_the_arm_count():
    arm = table(ARM, -0.01, steps=400)
    arm.loc[arm["batch_size"] <= 64, "val_loss"] += 1.0  # above the baseline: not trained
    kept, untrained = trained_sizes(arm, baseline=0.5)
    assert (kept, untrained) == ([128, 256, 512], [32, 64])
    result = equal_steps_test(table(SWEEP, 0.01), arm, "val_loss", baseline=0.5)
    assert result["verdict"] == "inconclusive" and result["n_x"] == 3
    assert "3 batch sizes of the arm trained; the test needs 4" in result["detail"]
    assert "not below the baseline 0.5: 32, 64" in result["detail"]


def test_accuracy_advantage_runs_the_other_way():
    assert advantage_direction("test_accuracy") == "decreases_with_batch_size"
    assert advantage_direction("generalization_gap") == "increases_with_batch_size"
    result = equal_steps_test(table(SWEEP, -0.01, metric="val_accuracy"), table(ARM, 0.01, metric="val_accuracy"),
                              "val_accuracy")
    assert result["verdict"] == "replicated"


def _null(sizes, rng) -> pd.DataFrame:
    """No trend: an effect per batch size shared by its seeds, plus smaller seed noise."""
    runs = table(sizes, 0.0)
    effect = dict(zip(sizes, rng.normal(size=len(sizes))))
    runs["val_loss"] = runs["batch_size"].map(effect) + 0.3 * rng.normal(size=len(runs))
    return runs


def test_null_rate_of_replicated_stays_below_alpha():
    """No batch-size effect in either arm: 'replicated' at most alpha (0.05) of the time, 400 tables."""
    rng = np.random.default_rng(7)
    reps = 400
    hits = sum(
        equal_steps_test(_null(SWEEP, rng), _null(ARM, rng), "val_loss", n_perm=2000)["verdict"] == "replicated"
        for _ in range(reps)
    )
    assert hits / reps <= 0.05


def test_the_scorecard_scores_it_with_a_protocol_note():
    claim = Claim(id="vanish", source="Hoffer et al. 2017", metric="val_loss", expect="vanishes_at_equal_steps")
    card = evaluate_claims([claim], table(SWEEP, 0.01), equal_steps=table(ARM, -0.01, steps=400))
    row = card.iloc[0]
    assert row["statistic"] == "equal_steps_rho" and row["verdict"] == "replicated"
    assert "regime adaptation" in row["protocol"]
    with pytest.raises(ValueError, match="no runs of the equal-steps arm"):
        evaluate_claims([claim], table(SWEEP, 0.01))


BASE = {
    "data": {"name": "synthetic_ehr", "n_samples": 600, "n_features": 40},
    "model": {"kind": "dense_ae", "hidden": [16], "latent": 4},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [1, 4, 16, 32, 64, 128],
}
CLAIM = {"id": "vanish", "source": "Hoffer", "metric": "val_loss", "expect": "vanishes_at_equal_steps"}


def test_the_arm_is_a_study_of_equal_steps():
    study = Study.model_validate({**BASE, "equal_steps": {"steps": 50, "batch_sizes": [4, 16, 64, 128]}, "claims": [CLAIM]})
    view = study.equal_steps_view()
    assert [view.budget.steps(b, 360) for b in view.batch_sizes] == [50, 50, 50, 50]
    assert view.seeds == [0, 1] and view.claims == [] and view.sharpness.samples == 0
    assert study.cell_view(4).equal_steps is None  # the sweep's cells do not rerun when the arm changes


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"claims": [CLAIM]}, "no `equal_steps` block"),
        ({"equal_steps": {"steps": 50, "batch_sizes": [4, 16, 64, 256]}}, "not among the study's batch_sizes"),
        ({"equal_steps": {"steps": 50, "batch_sizes": [4, 16, 64]}}, "at least 4"),
        ({"equal_steps": {"steps": 0, "batch_sizes": [4, 16, 64, 128]}}, "greater than 0"),
        ({"claims": [{**CLAIM, "metric": "sharpness"}], "equal_steps": {"steps": 5, "batch_sizes": [4, 16, 64, 128]}},
         "not measured on the equal-steps arm"),
    ],
    ids=["claim-without-arm", "size-outside-sweep", "too-few-sizes", "no-steps", "unmeasured-metric"],
)
def test_bad_arms_are_refused(update, message):
    with pytest.raises(ValidationError, match=message):
        Study.model_validate({**BASE, **update})


def test_the_cost_estimate_counts_the_arm():
    from batchlab.training.cost import cell_costs

    study = Study.model_validate({**BASE, "equal_steps": {"steps": 50, "batch_sizes": [4, 16, 64, 128], "seeds": [3]}})
    arm = [c for c in cell_costs("s", study, None) if c.arm == "equal_steps"]
    assert [(c.batch_size, c.runs, c.steps) for c in arm] == [(4, 1, 50), (16, 1, 50), (64, 1, 50), (128, 1, 50)]
    assert [c.arm for c in cell_costs("s", study, None)].count("sweep") == 6


def test_four_trained_batch_sizes_are_enough():
    """Exactly the minimum: four batch sizes in perfect order each way give exact p = 1/4! = 0.042 in both tests."""
    sizes = ARM[1:]
    result = equal_steps_test(table(SWEEP, 0.01), table(sizes, -0.01, steps=400), "val_loss")
    assert result["n_x"] == 4 and result["verdict"] == "replicated"
    assert result["p_value"] == pytest.approx(1 / 24)


def test_fisher_interval_of_rho_at_known_values():
    """Fisher's z with Spearman's variance factor 1.06: tanh(atanh(rho) -/+ 1.959964 sqrt(1.06 / (n - 3))), worked
    by hand at rho 0.5 over 10 batch sizes and at rho -0.8 over 4 (the fewest that give an interval)."""
    from batchlab.analysis.trend import _fisher_interval

    assert _fisher_interval(0.5, 10, 0.95) == pytest.approx((-0.2102098, 0.8647814), abs=1e-6)
    assert _fisher_interval(-0.8, 4, 0.95) == pytest.approx((-0.9960807, 0.7255633), abs=1e-6)
    assert all(math.isnan(v) for v in _fisher_interval(0.5, 3, 0.95))


def test_a_monte_carlo_trend_p_is_the_same_every_time():
    """Beyond 8 batch sizes the permutation p is Monte Carlo; it is seeded, so a config gives the same verdicts."""
    from batchlab.analysis.trend import trend_test

    noisy = table(SWEEP, 0.0)
    noisy["val_loss"] = np.random.default_rng(3).normal(size=len(noisy))
    first, second = (trend_test(noisy, "batch_size", "val_loss", "increases_with_batch_size", n_perm=2000) for _ in range(2))
    assert first["p_value"] == second["p_value"] and 0 < first["p_value"] < 1
