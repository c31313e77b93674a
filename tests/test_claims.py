"""The scorecard's trend test on run tables whose verdict is known."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.claims import evaluate_claims, trend_test
from batchlab.config import Claim

SIZES = [1, 2, 4, 8, 16, 32, 64]


def runs(slope: float, noise: float, seeds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Metric = slope * log2(B) + independent noise per run."""
    rng = np.random.default_rng(seed)
    rows = [
        {"batch_size": b, "seed": s, "val_loss": slope * math.log2(b) + noise * rng.normal()}
        for b in SIZES
        for s in range(seeds)
    ]
    return pd.DataFrame(rows)


def test_clear_rise_is_replicated_and_its_opposite_is_not():
    table = runs(slope=0.1, noise=0.01)
    up = trend_test(table, "batch_size", "val_loss", "increases_with_batch_size")
    down = trend_test(table, "batch_size", "val_loss", "decreases_with_batch_size")
    assert up["estimate"] == pytest.approx(1.0) and up["low"] > 0.9
    assert up["verdict"] == "replicated" and down["verdict"] == "not replicated"
    assert up["at_smallest"] < up["at_largest"]


def test_no_trend_is_inconclusive():
    result = trend_test(runs(slope=0.0, noise=1.0), "batch_size", "val_loss", "increases_with_batch_size")
    assert result["low"] < 0 < result["high"]
    assert result["verdict"] == "inconclusive"


def test_one_seed_or_two_batch_sizes_is_inconclusive():
    assert trend_test(runs(0.1, 0.01, seeds=1), "batch_size", "val_loss", "increases_with_batch_size")["verdict"] == "inconclusive"
    two = runs(0.1, 0.01)
    two = two[two["batch_size"] <= 2]
    assert trend_test(two, "batch_size", "val_loss", "increases_with_batch_size")["verdict"] == "inconclusive"


def test_diverged_runs_are_left_out_and_counted():
    table = runs(slope=0.1, noise=0.01)
    table.loc[table["batch_size"] == 64, "val_loss"] = np.nan
    result = trend_test(table, "batch_size", "val_loss", "increases_with_batch_size")
    assert result["n_excluded_runs"] == 5 and result["n_x"] == len(SIZES) - 1
    assert result["verdict"] == "replicated"


def test_bootstrap_is_paired_over_seeds():
    # Each seed has its own offset, identical at every batch size, plus a small rise: pairing removes the
    # offsets, so the rise is detected although the offsets dwarf it.
    rng = np.random.default_rng(1)
    offsets = rng.normal(0, 10, 5)
    table = pd.DataFrame(
        [{"batch_size": b, "seed": s, "val_loss": offsets[s] + 0.01 * math.log2(b)} for b in SIZES for s in range(5)]
    )
    result = trend_test(table, "batch_size", "val_loss", "increases_with_batch_size")
    assert result["low"] == pytest.approx(1.0) and result["verdict"] == "replicated"


def test_scorecard_rows_for_table_and_spread_claims():
    claims = [
        Claim(id="loss-up", source="paper", metric="val_loss", expect="increases_with_batch_size"),
        Claim(id="spread-down", source="paper", metric="gradient_spread", expect="decreases_with_batch_size"),
    ]
    spread = pd.DataFrame(
        [
            {"batch_size": cell, "seed": 0, "fraction": f, "probe_batch_size": p, "spread": p**-0.5 * (1 + 0.01 * cell)}
            for cell in (1, 4, 16)
            for f in (0.0, 1.0)
            for p in (1, 2, 4, 8)
        ]
    )
    card = evaluate_claims(claims, runs(0.1, 0.01), spread, n_boot=200)
    assert card["claim"].tolist() == ["loss-up", "spread-down"]
    assert card["verdict"].tolist() == ["replicated", "replicated"]
    assert card.loc[1, "n_units"] == 3 and "interval of ρ" in card.loc[0, "rule"]
    with pytest.raises(ValueError, match="no gradient spread"):
        evaluate_claims(claims[1:], runs(0.1, 0.01), None)


# ---------------------------------------------------------------- samples seen vs steps (Vaessen)

CURVE_SIZES = [1, 4, 16, 64]


def curves(loss_of, n_train: int = 4096, seeds: int = 4, noise: float = 0.002, seed: int = 0) -> pd.DataFrame:
    """Logged curves of a fixed-budget sweep (one epoch); loss_of(samples_seen, step) gives the noiseless value."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in CURVE_SIZES:
        total = n_train // b
        for step in np.unique(np.geomspace(1, total, 20).round().astype(int)):
            for s in range(seeds):
                rows.append({"batch_size": b, "seed": s, "step": int(step), "samples_seen": int(step * b),
                             "val_loss": loss_of(step * b, step) + noise * rng.normal()})
    return pd.DataFrame(rows)


def test_samples_seen_predict_when_the_loss_follows_samples_and_not_when_it_follows_steps():
    from batchlab.claims import samples_predict_test

    by_samples = samples_predict_test(curves(lambda n, s: 1 / np.log1p(n)), "val_loss", n_boot=300)
    by_steps = samples_predict_test(curves(lambda n, s: 1 / np.log1p(s)), "val_loss", n_boot=300)
    assert by_samples["estimate"] > 0 and by_samples["verdict"] == "replicated"
    assert by_steps["estimate"] < 0 and by_steps["verdict"] == "not replicated"


def test_samples_seen_claim_on_pure_noise_is_inconclusive():
    from batchlab.claims import samples_predict_test

    result = samples_predict_test(curves(lambda n, s: 0.0, noise=1.0), "val_loss", n_boot=300)
    assert result["low"] < 0 < result["high"] and result["verdict"] == "inconclusive"


# ---------------------------------------------------------------- linear scaling up to B_crit (Goyal, McCandlish)


def budget_table(loss_of_b, seeds: int = 5, noise: float = 0.002) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        [{"batch_size": b, "seed": s, "val_loss": loss_of_b(b) * (1 + noise * rng.normal()),
          "val_accuracy": 0.9 - (0.2 if b > 16 else 0.0) + noise * rng.normal()}
         for b in SIZES for s in range(seeds)]
    )


def test_flat_until_b_crit_then_worse_is_replicated():
    from batchlab.claims import degradation_test

    table = budget_table(lambda b: 0.30 if b <= 16 else 0.45)
    result = degradation_test(table, "val_loss", b_crit=20.0, tolerance=0.05, n_boot=300)
    assert result["estimate"] == pytest.approx(0.5, abs=0.01)
    assert result["verdict"] == "replicated"
    # higher-is-better metrics are flipped: a fall in accuracy is the degradation
    assert degradation_test(table, "val_accuracy", 20.0, 0.05, 300)["verdict"] == "replicated"


def test_degrading_below_b_crit_or_holding_beyond_it_is_not_replicated():
    from batchlab.claims import degradation_test

    steady_rise = budget_table(lambda b: 0.3 * (1 + 0.2 * math.log2(b)))
    assert degradation_test(steady_rise, "val_loss", 20.0, 0.05, 300)["verdict"] == "not replicated"
    flat = budget_table(lambda b: 0.3)
    assert degradation_test(flat, "val_loss", 20.0, 0.05, 300)["verdict"] == "not replicated"


def test_linear_scaling_claim_without_room_below_b_crit_is_inconclusive():
    from batchlab.claims import degradation_test

    table = budget_table(lambda b: 0.30 if b <= 16 else 0.45)
    assert degradation_test(table, "val_loss", b_crit=1.5, tolerance=0.05, n_boot=200)["verdict"] == "inconclusive"
    assert degradation_test(table, "val_loss", b_crit=math.nan, tolerance=0.05, n_boot=200)["verdict"] == "inconclusive"


def test_claims_need_a_matching_metric_and_expectation():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="critical_batch_size"):
        Claim(id="a", source="x", metric="val_loss", expect="increases_with_data_size")
    with pytest.raises(ValidationError, match="curve metric"):
        Claim(id="a", source="x", metric="test_loss", expect="predicted_by_samples_seen")
    with pytest.raises(ValidationError, match="tolerance applies"):
        Claim(id="a", source="x", metric="val_loss", expect="increases_with_batch_size", tolerance=0.1)
