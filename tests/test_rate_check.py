"""The rate check of a fixed-rate train-to-target analysis: B_crit refitted at a second rate, flagged rate-limited
when it moves by more than 2x, and the claims that rest on it made inconclusive (known S(B) curves)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.b_crit_claims import degradation_test
from batchlab.analysis.claims import evaluate_claims
from batchlab.analysis.rates import RateProtocol, rate_check, rate_limit_reason, rate_protocol
from batchlab.config import Claim, ConfigError, validate_config

SIZES = [2**k for k in range(11)]
BASE = {
    "data": {"name": "synthetic_ehr", "n_samples": 600, "n_features": 24, "n_factors": 3},
    "model": {"kind": "dense_ae", "hidden": [16], "latent": 4},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [1, 4, 16],
    "seeds": [0, 1],
}


def target_runs(b_crit: float, check_b_crit: float, factor: float = 4.0) -> pd.DataFrame:
    """Two seeds' train-to-target runs at base rate 0.01, each with its twin at factor x 0.01 (exact S(B) curves)."""
    return pd.DataFrame([
        {"batch_size": b, "seed": s, "base_lr": 0.01, "steps": 100 * (1 + b_crit / b),
         "rate_check_base_lr": 0.01 * factor, "rate_check_lr": 0.01 * factor,
         "rate_check_steps": 100 * (1 + check_b_crit / b)}
        for b in SIZES for s in (0, 1)
    ])


def test_b_crit_moving_fourfold_with_the_rate_is_rate_limited():
    row, reason = rate_check(target_runs(16.0, 64.0), 16.0)
    assert row.loc[0, "estimate"] == pytest.approx(64.0, rel=1e-6) and row.loc[0, "flag"] == ""
    assert reason == ("rate-limited: refitted with the same seeds at 4x the rate, B_crit moves from 16 to 64, more than "
                      "2x: the fixed rate binds (McCandlish et al. tune it per batch size)")
    assert rate_limit_reason(row) == reason


@pytest.mark.parametrize(("check", "limited"), [(31.0, False), (33.0, True), (8.5, False), (7.5, True)])
def test_the_limit_is_a_factor_of_two_either_way(check, limited):
    _, reason = rate_check(target_runs(16.0, check, factor=0.25), 16.0)
    assert bool(reason) is limited and ("at 0.25x the rate" in reason or not limited)


def test_no_rate_check_leaves_the_table_alone():
    row, reason = rate_check(target_runs(16.0, 64.0).drop(columns=["rate_check_steps"]), 16.0)
    assert row.empty and reason == ""
    unreached = target_runs(16.0, 64.0).assign(rate_check_steps=np.nan)  # no run reached the target at the other rate
    row, reason = rate_check(unreached, 16.0)
    assert np.isnan(row.loc[0, "estimate"]) and "could not be estimated" in row.loc[0, "flag"] and reason == ""


def test_a_rate_limited_b_crit_makes_the_claims_resting_on_it_inconclusive():
    runs = pd.DataFrame([{"batch_size": b, "seed": s, "val_loss": 0.3 if b <= 16 else 0.45, "lr_rule": "fixed"}
                         for b in SIZES for s in range(5)])
    steps = pd.DataFrame([{"batch_size": b, "seed": s, "steps": 100 * (1 + 16 / b), "reached": True}
                          for b in SIZES for s in range(5)])
    claim = Claim(id="lin", source="Goyal", metric="val_loss", expect="holds_until_critical_batch")
    plain = evaluate_claims([claim], runs, None, n_boot=200, steps=steps)
    assert plain.loc[0, "verdict"] == "replicated"
    assert degradation_test(runs, "val_loss", 16.0, 0.05, 200)["verdict"] == "replicated"
    _, reason = rate_check(target_runs(16.0, 64.0), 16.0)
    limited = evaluate_claims([claim], runs, None, n_boot=200, steps=steps,
                              critical_protocol=RateProtocol("fixed", rate_limited=reason))
    assert limited.loc[0, "verdict"] == "inconclusive" and limited.loc[0, "note"].startswith("B_crit rate-limited")
    trend = Claim(id="t", source="Keskar", metric="val_loss", expect="increases_with_batch_size")
    both = evaluate_claims([trend], runs, None, n_boot=200, critical_protocol=RateProtocol("fixed", rate_limited=reason))
    assert both.loc[0, "verdict"] == "replicated"  # a trend over batch sizes does not rest on B_crit
    table = pd.DataFrame([{"quantity": "b_crit", "rate_limited": np.nan},
                          {"quantity": "b_crit_rate_check", "rate_limited": reason}])
    assert rate_protocol(runs, critical=table).rate_limited == reason


@pytest.mark.parametrize(("block", "message"), [
    ({"rate_check": 2.0}, "rate_check must be at least 4 or at most 1/4"),
    ({"rate_check": 0.5}, "rate_check must be at least 4 or at most 1/4"),
    ({"rate_check": 100.0}, "within 64x"),
    ({"rate_check": -4.0}, "rate_check"),
    ({"rate_check": 4.0, "lr_tuning": {"points": 3}}, "rate_check is for a fixed rate"),
])
def test_bad_rate_checks_are_refused_naming_the_study_and_field(block, message):
    raw = {"studies": {"s": {**BASE, "to_target": {"cap": {"unit": "epochs", "amount": 3}, **block}}}}
    with pytest.raises(ConfigError) as err:
        validate_config(raw, source="c.yaml")
    assert "c.yaml" in str(err.value) and "study 's'" in str(err.value) and message in str(err.value)


def test_a_rate_check_beside_a_tuned_sweep_rule_is_refused():
    raw = {"studies": {"s": {**BASE, "optim": {"lr_rule": "tuned", "lr_grid": [0.001, 0.01]},
                             "to_target": {"cap": {"unit": "epochs", "amount": 3}, "rate_check": 4.0}}}}
    with pytest.raises(ConfigError, match="rate_check checks a fixed rate rule"):
        validate_config(raw, source="c.yaml")


def test_the_cli_carries_a_rate_check_from_the_to_target_block_to_the_critical_table(tmp_path):
    """`batchlab train --to-target-json` trains the twins, `batchlab critical --target-runs` refits them."""
    from batchlab.analysis.aggregate import read_all
    from batchlab.cli import main
    from batchlab.config import Study
    from batchlab.data import make_dataset, save_dataset

    study = Study.model_validate({**BASE, "optim": {"lr": 0.01}, "to_target": {
        "kind": "value", "value": 0.6, "cap": {"unit": "epochs", "amount": 2}, "checks": 8, "rate_check": 4.0}})
    view, data = study.to_target_view(), tmp_path / "data.npz"
    save_dataset(make_dataset(study.data), data)
    for b in view.batch_sizes:
        main(["train", "--study", "s", "--study-json", view.model_dump_json(), "--batch-size", str(b), "--data", str(data),
              "--device", "cpu", "--to-target-json", study.to_target.model_dump_json(), "--out-dir", str(tmp_path / f"bs{b}")])
    runs = read_all([str(tmp_path / f"bs{b}" / "runs.parquet") for b in view.batch_sizes])
    assert runs["rate_check_base_lr"].tolist() == pytest.approx([0.04] * len(runs))
    pd.concat([pd.read_parquet(tmp_path / f"bs{b}" / "curves.parquet") for b in view.batch_sizes]).to_parquet(
        tmp_path / "curves.parquet")
    pd.DataFrame({"batch_size": pd.Series(dtype=int)}).to_parquet(tmp_path / "noise.parquet")
    runs.to_parquet(tmp_path / "runs.parquet")
    main(["critical", "--study", "s", "--target-json", study.steps_to_target.model_dump_json(), "--model-json",
          study.model.model_dump_json(), "--data", str(data), "--curves", str(tmp_path / "curves.parquet"), "--noise",
          str(tmp_path / "noise.parquet"), "--target-runs", str(tmp_path / "runs.parquet"), "--steps",
          str(tmp_path / "steps.parquet"), "--out", str(tmp_path / "critical.parquet")])
    table = pd.read_parquet(tmp_path / "critical.parquet").set_index("quantity")
    assert table.loc["b_crit_rate_check", "method"] == "S(B) fit at 4x the rate (rate check)"
