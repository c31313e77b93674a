"""The scorecard's trend test on run tables whose verdict is known."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.claims import evaluate_claims, spread_slope_test, trend_test
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


def own_spread_table(spread_of, seeds: int = 3, noise: float = 0.02, sizes=SIZES, seed: int = 0) -> pd.DataFrame:
    """Spread rows as the gradient jobs write them: each trained run at its own batch size (and one probe sweep row)."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in sizes:
        for s in range(seeds):
            for f in (0.5, 1.0):
                own = spread_of(b) * math.exp(noise * rng.normal())
                rows.append({"batch_size": b, "seed": s, "fraction": f, "probe": "own", "probe_batch_size": b, "spread": own})
                rows.append({"batch_size": b, "seed": s, "fraction": f, "probe": "sweep", "probe_batch_size": 1, "spread": 1.0})
    return pd.DataFrame(rows)


def test_scorecard_rows_for_table_and_spread_claims():
    claims = [
        Claim(id="loss-up", source="paper", metric="val_loss", expect="increases_with_batch_size"),
        Claim(id="spread-down", source="paper", metric="gradient_spread", expect="decreases_with_batch_size"),
        Claim(id="spread-flat", source="paper", metric="gradient_spread", expect="flattens_with_batch_size"),
    ]
    spread = own_spread_table(lambda b: b**-0.5)
    card = evaluate_claims(claims, runs(0.1, 0.01), spread, n_boot=200)
    assert card["claim"].tolist() == ["loss-up", "spread-down", "spread-flat"]
    assert card["verdict"].tolist() == ["replicated", "replicated", "not replicated"]
    assert card.loc[1, "n_units"] == 3 and "interval of ρ" in card.loc[0, "rule"]
    with pytest.raises(ValueError, match="no gradient spread"):
        evaluate_claims(claims[1:], runs(0.1, 0.01), None)
    with pytest.raises(ValueError, match="own batch sizes"):  # a table from before own-batch-size probes
        evaluate_claims(claims[1:], runs(0.1, 0.01), spread.drop(columns="probe"))


# ---------------------------------------------------------------- gradient spread flattens (Vaessen)


def line_ratio(result: dict) -> float:
    """The spread at the largest batch size over the B^-1/2 line, as the detail writes it."""
    return float(re.search(r"largest batch size ([0-9.]+)x the B\^-1/2 line", result["detail"]).group(1))


def test_spread_following_inverse_square_root_is_not_replicated():
    """The null: one model's sampling noise, spread = c B^-1/2 at every trained batch size."""
    result = spread_slope_test(own_spread_table(lambda b: 0.3 * b**-0.5), tolerance=0.1, n_boot=300)
    assert result["estimate"] == pytest.approx(-0.5, abs=0.02)
    assert result["high"] < -0.4 and result["verdict"] == "not replicated"
    assert line_ratio(result) == pytest.approx(1.0, abs=0.05)


def test_spread_with_a_plateau_is_replicated():
    """Vaessen & van Leeuwen: B^-1/2 up to a batch size, then flat (here from 16 on)."""
    result = spread_slope_test(own_spread_table(lambda b: 0.3 * min(b, 16) ** -0.5), tolerance=0.1, n_boot=300)
    assert -0.4 < result["low"] and result["verdict"] == "replicated"
    assert result["at_largest"] == pytest.approx(0.3 / 4, rel=0.05)
    assert line_ratio(result) == pytest.approx(2.0, rel=0.05)  # at 64: sqrt(64 / 16) above the line


def test_spread_slope_uses_the_last_checkpoint_and_needs_two_seeds():
    table = own_spread_table(lambda b: 0.3 * min(b, 16) ** -0.5)
    early = (table["fraction"] == 0.5) & (table["probe"] == "own")
    table.loc[early, "spread"] = 0.3 * table.loc[early, "batch_size"] ** -0.5  # the null at the earlier checkpoint
    assert spread_slope_test(table, 0.1, 200)["verdict"] == "replicated"
    one_seed = own_spread_table(lambda b: 0.3 * min(b, 16) ** -0.5, seeds=1)
    assert spread_slope_test(one_seed, 0.1, 200)["verdict"] == "inconclusive"


def test_noisy_spread_is_inconclusive():
    result = spread_slope_test(own_spread_table(lambda b: 0.3 * b**-0.4, noise=0.8), tolerance=0.1, n_boot=300)
    assert result["low"] < -0.4 < result["high"] and result["verdict"] == "inconclusive"


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
    from batchlab.analysis.claims import samples_predict_test

    by_samples = samples_predict_test(curves(lambda n, s: 1 / np.log1p(n)), "val_loss", n_boot=300)
    by_steps = samples_predict_test(curves(lambda n, s: 1 / np.log1p(s)), "val_loss", n_boot=300)
    assert by_samples["estimate"] > 0 and by_samples["verdict"] == "replicated"
    assert by_steps["estimate"] < 0 and by_steps["verdict"] == "not replicated"


def test_samples_seen_claim_on_pure_noise_is_inconclusive():
    from batchlab.analysis.claims import samples_predict_test

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
    from batchlab.analysis.claims import degradation_test

    table = budget_table(lambda b: 0.30 if b <= 16 else 0.45)
    result = degradation_test(table, "val_loss", b_crit=20.0, tolerance=0.05, n_boot=300)
    assert result["estimate"] == pytest.approx(0.5, abs=0.01)
    assert result["verdict"] == "replicated"
    # higher-is-better metrics are flipped: a fall in accuracy is the degradation
    assert degradation_test(table, "val_accuracy", 20.0, 0.05, 300)["verdict"] == "replicated"


def test_degrading_below_b_crit_or_holding_beyond_it_is_not_replicated():
    from batchlab.analysis.claims import degradation_test

    steady_rise = budget_table(lambda b: 0.3 * (1 + 0.2 * math.log2(b)))
    assert degradation_test(steady_rise, "val_loss", 20.0, 0.05, 300)["verdict"] == "not replicated"
    flat = budget_table(lambda b: 0.3)
    assert degradation_test(flat, "val_loss", 20.0, 0.05, 300)["verdict"] == "not replicated"


def test_linear_scaling_claim_without_room_below_b_crit_is_inconclusive():
    from batchlab.analysis.claims import degradation_test

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


def steps_of(b_crit_per_seed, sizes=SIZES, s_min: float = 100.0) -> pd.DataFrame:
    """Steps to target S(B) = S_min (1 + B_crit/B), one B_crit per seed (seed means fit S(B) exactly)."""
    return pd.DataFrame(
        [{"batch_size": b, "seed": s, "steps": s_min * (1 + bc / b), "reached": True}
         for s, bc in enumerate(b_crit_per_seed) for b in sizes]
    )


def test_b_crit_uncertainty_is_carried_into_the_linear_scaling_claim():
    """The same point B_crit (~22) and the same losses: replicated when the seeds agree on B_crit, inconclusive
    when they disagree so much that resampled B_crit often puts 32 (already worse) below it."""
    from batchlab.analysis.claims import b_crit_of_seeds, degradation_test

    table = budget_table(lambda b: 0.30 if b <= 16 else 0.45)
    agree = b_crit_of_seeds(steps_of([22.0] * 5))
    disagree = b_crit_of_seeds(steps_of([4.0, 8.0, 14.0, 40.0, 44.0]))
    assert agree(np.arange(5))[0] == pytest.approx(22.0) and disagree(np.arange(5))[0] == pytest.approx(22.0)
    assert degradation_test(table, "val_loss", 22.0, 0.05, 400)["verdict"] == "replicated"
    assert degradation_test(table, "val_loss", agree, 0.05, 400)["verdict"] == "replicated"
    spread_out = degradation_test(table, "val_loss", disagree, 0.05, 400)
    assert spread_out["verdict"] == "inconclusive"
    assert "measured in 100% of the resamples" in spread_out["detail"]


def test_a_flagged_b_crit_makes_the_linear_scaling_claim_inconclusive_with_the_reason():
    from batchlab.analysis.claims import b_crit_of_seeds, degradation_test

    ehr_flat = [17.4, 15.9, 14.9, 14.4, 14.0, 13.6, 13.4, 13.3, 13.2, 13.5, np.nan]
    sizes = 2 ** np.arange(11)
    steps = pd.DataFrame(
        [{"batch_size": b, "seed": s, "steps": v * (1 + 0.01 * s), "reached": np.isfinite(v)}
         for s in range(5) for b, v in zip(sizes, ehr_flat)]
    )
    table = budget_table(lambda b: 0.30 if b <= 16 else 0.45)
    result = degradation_test(table, "val_loss", b_crit_of_seeds(steps), 0.05, 200)
    assert result["verdict"] == "inconclusive"
    assert "B_crit is not a measurement: B_crit = 0.3" in result["detail"] and "below the smallest" in result["detail"]


# ---------------------------------------------------------------- the noise scale predicts B_crit (McCandlish)


def noise_table(b_simple_of, seeds=(0, 1), sizes=SIZES, fractions=(0.0, 0.25, 1.0), total=lambda b: 6400 // b):
    """Gradient statistics as the jobs write them: init measured in the smallest cell only."""
    rows = []
    for b in sizes:
        for s in seeds:
            for f in fractions:
                if f == 0 and b != min(sizes):
                    continue
                rows.append({"batch_size": b, "seed": s, "fraction": f, "step": int(round(f * total(b))),
                             "b_simple": b_simple_of(b, s, f), "method": "per_example"})
    return pd.DataFrame(rows)


def test_the_checkpoint_closest_to_the_crossing_in_log_step_is_used():
    from batchlab.analysis.critical import noise_at_crossing

    noise = noise_table(lambda b, s, f: 10 + 100 * f, sizes=[1, 4], seeds=[0], total=lambda b: {1: 400, 4: 4000}[b])
    steps = pd.DataFrame({"batch_size": [1, 4], "seed": [0, 0], "steps": [3.0, 1500.0], "reached": [True, True]})
    at = noise_at_crossing(noise, steps).set_index("batch_size")
    # B=1: checkpoints at steps 0 (counted as 1), 100, 400; crossing 3: log-distance 1.10 to step 1, 3.51 to 100
    assert at.loc[1, "fraction"] == 0.0 and at.loc[1, "step_factor"] == pytest.approx(3.0)
    # B=4 has no init row of its own: the seed's initial weights (measured at B=1) serve it; 1000 is closest to 1500
    assert at.loc[4, "fraction"] == 0.25 and at.loc[4, "b_simple"] == 35.0 and at.loc[4, "step_factor"] == pytest.approx(1.5)
    unreached = steps.assign(reached=[True, False])
    assert noise_at_crossing(noise, unreached)["batch_size"].tolist() == [1]


def test_noise_scale_matching_b_crit_is_replicated_and_a_tenfold_miss_is_not():
    from batchlab.analysis.claims import noise_scale_test

    rng = np.random.default_rng(0)
    steps = steps_of([40.0, 50.0, 60.0])
    near = noise_scale_test(noise_table(lambda b, s, f: 60 * math.exp(0.1 * rng.normal())), steps, 3.0, 400)
    assert near["estimate"] == pytest.approx(60 / 50, rel=0.1) and near["verdict"] == "replicated"
    assert near["n_units"] == 2 and "B_crit 50" in near["detail"]
    far = noise_scale_test(noise_table(lambda b, s, f: 500 * math.exp(0.1 * rng.normal())), steps, 3.0, 400)
    assert far["estimate"] == pytest.approx(10, rel=0.1) and far["verdict"] == "not replicated"


def test_noise_scale_claim_is_inconclusive_without_two_measured_seeds_or_a_measured_b_crit():
    from batchlab.analysis.claims import noise_scale_test

    one_seed = noise_scale_test(noise_table(lambda b, s, f: 50.0, seeds=[0]), steps_of([50.0] * 3), 3.0, 200)
    assert one_seed["verdict"] == "inconclusive"
    beyond = noise_scale_test(noise_table(lambda b, s, f: 50.0), steps_of([5000.0] * 3), 3.0, 200)
    assert beyond["verdict"] == "inconclusive" and "above the largest batch size" in beyond["detail"]


def test_noise_scale_claim_in_the_scorecard():
    claim = Claim(id="gns", source="McCandlish", metric="gradient_noise_scale", expect="predicts_critical_batch")
    card = evaluate_claims([claim], runs(0.1, 0.01), None, n_boot=200, steps=steps_of([50.0] * 3),
                           noise=noise_table(lambda b, s, f: 50.0 * (1 + 0.01 * s)))
    assert card.loc[0, "statistic"] == "noise_scale_ratio" and card.loc[0, "verdict"] == "replicated"
    assert "within a factor f of 1" in card.loc[0, "rule"]


def test_two_seeds_with_b_crit_flagged_in_one_seeds_resample_give_no_interval():
    """Seed 0's own B_crit (100) lies above the largest batch size (64), seed 1's (20) and their mean (60)
    inside. The resample {seed 0, seed 0}, a quarter of the draws, has no B_crit: leaving it out gave
    [value of {1, 1}, the estimate], an interval ending at the estimate. There is no 95% interval, the claim is
    inconclusive, and the detail says how few resamples two seeds give."""
    from batchlab.analysis.claims import b_crit_of_seeds, degradation_test

    losses = {1: 0.30, 2: 0.30, 4: 0.30, 8: 0.30, 16: 0.30, 32: 0.45, 64: 0.60}
    table = budget_table(lambda b: losses[b], seeds=2, noise=0.0)
    result = degradation_test(table, "val_loss", b_crit_of_seeds(steps_of([100.0, 20.0])), 0.05, 400)
    assert result["estimate"] == pytest.approx(1.0)  # B_crit 60: only 64 lies above it, 100% worse than at 1
    assert math.isnan(result["low"]) and math.isnan(result["high"])
    assert result["verdict"] == "inconclusive"
    assert "B_crit 60 (no interval)" in result["detail"] and "no 95% interval" in result["detail"]
    assert "2 seeds give 3 distinct resamples" in result["detail"] and result["note"].startswith("no 95% interval")


def test_a_trend_from_two_seeds_says_its_interval_ends_are_single_seeds():
    """Two seeds: 3 distinct resamples, {a, a} and {b, b} a quarter of the draws each, so the ends of a 95%
    interval are the rank correlations of one seed alone; the detail says so."""
    result = trend_test(runs(slope=0.1, noise=0.2, seeds=2), "batch_size", "val_loss", "increases_with_batch_size")
    assert "2 seeds give 3 distinct resamples" in result["detail"]
    assert "a resample of one seed alone is 25% of the draws, more than the 2.5% in a tail" in result["detail"]
