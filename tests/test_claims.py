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
    assert card.loc[1, "n_units"] == 3 and "bootstrap interval" in card.loc[0, "rule"]
    with pytest.raises(ValueError, match="no gradient spread"):
        evaluate_claims(claims[1:], runs(0.1, 0.01), None)
