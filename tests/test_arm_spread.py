"""The gradient spread scored at equal iterations, on the equal-steps arm (Vaessen & van Leeuwen compared runs so).

Known answers: one fixed model probed at every batch size follows B^-1/2 exactly in expectation, so the knee test
reads it "not replicated"; a claim with `arm: equal_steps` is scored on the arm's runs and spread, not the sweep's.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from batchlab.analysis.claims import evaluate_claims, spread_knee_test
from batchlab.config import Claim, Study
from batchlab.measure.gradients import gradient_spread

ARM = [32, 64, 128, 256, 512]
SWEEP = [1, 2, 4, 8, 16, *ARM]


def squared_error(model, x, y):
    return 0.5 * (model(x).squeeze(-1) - y) ** 2


def fixed_model_spread(sizes, seeds: int = 3, n: int = 4096, d: int = 32, draws: int = 200, data_seed: int = 7) -> pd.DataFrame:
    """The own-batch-size spread of ONE linear model (the same weights for every "run"), as the gradient job writes it.

    Drawn with replacement, a minibatch mean's SD is exactly sqrt(var / B) per parameter: log spread falls with
    slope -1/2 at every batch size, and only the draws' sampling error (SD about 1/sqrt(2 (draws - 1)) = 5% of a
    parameter's SD, about 1% averaged over d parameters) moves it. With 40 draws and 8 parameters that error alone
    made the knee test inconclusive for 5 of 8 data sets; with these, not replicated for each of 10.
    """
    rng = np.random.default_rng(data_seed)
    x = torch.tensor(rng.standard_normal((n, d)))
    y = torch.tensor(x.numpy() @ rng.standard_normal(d) + rng.standard_normal(n))
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(rng.standard_normal((1, d))))
    rows = []
    for seed in range(seeds):
        for b in sizes:
            gen = torch.Generator().manual_seed(1000 * seed + b)
            s = gradient_spread(model, squared_error, x, y, [b], draws, gen, replace=True)["spread"].iloc[0]
            rows.append({"batch_size": b, "seed": seed, "fraction": 1.0, "probe": "own", "probe_batch_size": b, "spread": s})
    return pd.DataFrame(rows)


def test_one_fixed_model_probed_at_every_batch_size_is_one_power_law():
    """The issue's null: the spread of one model falls as B^-1/2 throughout; the claim reads "not replicated"."""
    result = spread_knee_test(fixed_model_spread([2**k for k in range(11)]), min_effect=0.25)
    assert result["line_slope"] == pytest.approx(-0.5, abs=0.02)
    assert result["slope_before"] == pytest.approx(-0.5, abs=0.1) and result["slope_after"] == pytest.approx(-0.5, abs=0.1)
    assert result["verdict"] == "not replicated" and "one power law" in result["detail"]


def arm_runs(sizes, seeds=(0,), loss=0.1, steps=400) -> pd.DataFrame:
    return pd.DataFrame([{"batch_size": b, "seed": s, "val_loss": loss, "steps": steps, "diverged": False}
                         for b in sizes for s in seeds])


def spread_table(sizes, spread_of, seeds=(0,), noise=0.01) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame([{"batch_size": b, "seed": s, "fraction": 1.0, "probe": "own", "probe_batch_size": b,
                          "spread": spread_of(b) * math.exp(noise * rng.standard_normal())} for b in sizes for s in seeds])


SPREAD_CLAIM = {"id": "spread-flat", "source": "Vaessen & van Leeuwen 2024", "metric": "gradient_spread",
                "expect": "flattens_with_batch_size"}
KNEE_SIZES = [16, 32, 64, 128, 256, 512, 1024]


def test_a_claim_on_the_arm_is_scored_on_the_arm_and_says_so():
    """The sweep's spread is one power law, the arm's has a knee at 128: the arm's claim sees the knee."""
    sweep_claim = Claim(**SPREAD_CLAIM)
    arm_claim = Claim(**{**SPREAD_CLAIM, "id": "spread-flat-at-equal-steps", "arm": "equal_steps"})
    sweep = arm_runs(KNEE_SIZES, seeds=(0, 1, 2), steps=None)
    card = evaluate_claims(
        [sweep_claim, arm_claim], sweep, spread_table(KNEE_SIZES, lambda b: b**-0.5, seeds=(0, 1, 2)),
        equal_steps=arm_runs(KNEE_SIZES), equal_steps_spread=spread_table(KNEE_SIZES, lambda b: min(b, 128) ** -0.5),
    )
    by_id = card.set_index("claim")
    assert by_id.loc["spread-flat", "verdict"] == "not replicated"
    assert by_id.loc["spread-flat-at-equal-steps", "verdict"] == "replicated"
    assert "knee at B ≈ 128" in by_id.loc["spread-flat-at-equal-steps", "detail"]
    assert "equal iterations (400 updates per run" in by_id.loc["spread-flat-at-equal-steps", "protocol"]
    assert "equal-epoch budget" in by_id.loc["spread-flat", "protocol"]


def test_untrained_runs_of_the_arm_are_left_out():
    """Runs that do not beat the data's baseline leave the arm's claim: here too few batch sizes remain."""
    arm = arm_runs(KNEE_SIZES).assign(val_loss=[0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1])
    card = evaluate_claims([Claim(**{**SPREAD_CLAIM, "arm": "equal_steps"})], arm_runs(KNEE_SIZES), pd.DataFrame(),
                           baseline=0.2, equal_steps=arm,
                           equal_steps_spread=spread_table(KNEE_SIZES, lambda b: min(b, 128) ** -0.5))
    row = card.iloc[0]
    assert row["verdict"] == "inconclusive" and row["n_x"] == 3
    assert "16" in row["left_out"] and "128" in row["left_out"]


def test_a_claim_on_the_arm_without_its_runs_is_an_error():
    with pytest.raises(ValueError, match="no runs of the equal-steps arm"):
        evaluate_claims([Claim(**{**SPREAD_CLAIM, "arm": "equal_steps"})], arm_runs(KNEE_SIZES), pd.DataFrame())


BASE = {
    "data": {"name": "synthetic_ehr", "n_samples": 600, "n_features": 40},
    "model": {"kind": "dense_ae", "hidden": [16], "latent": 4},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [1, 4, 8, 16, 32, 64, 128],
}
FIVE = {"steps": 50, "batch_sizes": [8, 16, 32, 64, 128], "seeds": [0]}


def test_the_arm_keeps_every_seed_for_its_spread_job():
    study = Study.model_validate({**BASE, "equal_steps": {**FIVE, "seeds": [0, 1]},
                                  "claims": [{**SPREAD_CLAIM, "arm": "equal_steps"}]})
    assert study.measures_arm_spread()
    view = study.equal_steps_view()
    assert view.gradients.checkpoints == [1.0] and view.gradients.seeds == 2
    assert not Study.model_validate({**BASE, "equal_steps": FIVE}).measures_arm_spread()


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"claims": [{**SPREAD_CLAIM, "arm": "equal_steps"}]}, "no `equal_steps` block"),
        ({"claims": [{**SPREAD_CLAIM, "arm": "equal_steps"}], "equal_steps": {**FIVE, "batch_sizes": [8, 16, 32, 64]}},
         "needs at least 5 equal_steps.batch_sizes"),
        ({"claims": [{**SPREAD_CLAIM, "metric": "sharpness", "expect": "increases_with_batch_size", "arm": "equal_steps"}],
          "equal_steps": FIVE}, "arm equal_steps scores"),
        ({"claims": [{**SPREAD_CLAIM, "metric": "val_loss", "expect": "predicted_by_samples_seen", "arm": "equal_steps"}],
          "equal_steps": FIVE}, "arm equal_steps scores"),
        ({"claims": [{**SPREAD_CLAIM, "arm": "epochs"}], "equal_steps": FIVE}, "sweep"),
    ],
    ids=["no-arm", "one-seed-four-sizes", "unmeasured-metric", "not-a-trend", "unknown-arm"],
)
def test_bad_arm_claims_are_refused(update, message):
    with pytest.raises(ValidationError, match=message):
        Study.model_validate({**BASE, **update})


def test_four_arm_sizes_suffice_with_two_seeds():
    Study.model_validate({**BASE, "equal_steps": {**FIVE, "batch_sizes": [8, 16, 32, 64], "seeds": [0, 1]},
                          "claims": [{**SPREAD_CLAIM, "arm": "equal_steps"}]})


def test_the_arm_job_measures_the_own_spread_alone_and_the_same_as_the_full_job(monkeypatch):
    """--own-spread-only: no noise statistics and no probe sweep; the own batch size's spread is bit for bit the one
    the full measurement writes (the same draws), so scoring it on the arm changes nothing but which runs count."""
    from types import SimpleNamespace

    from test_known_answers_noise import generic_regression, regression_data

    from batchlab.config import GradientNoise
    from batchlab.measure import noise

    x, y, theta = generic_regression()
    monkeypatch.setattr(noise, "build_model", lambda *args: nn.Linear(x.shape[1], 1, bias=False).double())
    monkeypatch.setattr(noise, "sample_loss_for", lambda *args: squared_error)
    study = SimpleNamespace(is_classifier=False, model=SimpleNamespace(kind="linear"), seeds=[3, 4],
                            budget=SimpleNamespace(steps=lambda b, n: 400))
    state = {"weight": torch.tensor(theta, dtype=torch.float64)[None]}
    checkpoints = {"seed3": {"1.0": state}, "seed4": {"1.0": state}}
    spec = GradientNoise(eval_samples=len(x), seeds=2, spread_batch_sizes=[1, 2], spread_draws=5)
    data = regression_data(x, y)
    full_stats, full = noise.measure_cell(study, spec, data, 8, checkpoints, torch.device("cpu"))
    stats, own = noise.measure_cell(study, spec, data, 8, checkpoints, torch.device("cpu"), noise=False)
    assert stats.empty and len(full_stats) == 2
    assert own["probe"].tolist() == ["own", "own"] and own["step"].tolist() == [400, 400]
    expected = full[full["probe"] == "own"].reset_index(drop=True)
    pd.testing.assert_series_equal(own["spread"], expected["spread"])
    assert own["spread"].iloc[0] != own["spread"].iloc[1]  # each seed its own draws


ARM_STUDY = {
    "description": "A tiny EHR study with an equal-steps arm whose spread a claim scores.",
    "data": {"name": "synthetic_ehr", "n_samples": 240, "n_features": 60, "n_factors": 4},
    "model": {"kind": "dense_ae", "hidden": [16], "latent": 4},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [1, 2, 4, 8, 16],
    "seeds": [0, 1],
    "gradients": {"checkpoints": [1], "seeds": 2, "eval_samples": 32, "spread_batch_sizes": [1, 2]},
    "equal_steps": {"steps": 6, "batch_sizes": [1, 2, 4, 8, 16], "seeds": [0]},
    "claims": [{**SPREAD_CLAIM, "arm": "equal_steps"}],
}


def test_the_workflow_measures_the_arms_spread_at_equal_iterations(tmp_path):
    """snakemake trains the arm and runs its spread job: one row per arm run, each at 6 updates, own batch size only."""
    import yaml
    from conftest import snakemake

    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump({"device": "cpu", "studies": {"arm": ARM_STUDY}}))
    target = "results/arm/equal_steps/spread.parquet"
    result = snakemake(tmp_path, "--cores", "2", target)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "gradients_equal_steps" in result.stderr and "rule gradients:" not in result.stderr  # no sweep job
    spread = pd.read_parquet(tmp_path / target)
    assert sorted(spread["batch_size"]) == [1, 2, 4, 8, 16] and set(spread["probe"]) == {"own"}
    assert set(spread["step"]) == {6} and (spread["spread"] > 0).all()
    assert pd.read_parquet(tmp_path / "results/arm/equal_steps/gradients.parquet").empty
    dry = snakemake(tmp_path, "--cores", "2", "--dry-run", "--printshellcmds", "reports/arm/index.html")
    assert f"--equal-steps-spread {target}" in dry.stdout
