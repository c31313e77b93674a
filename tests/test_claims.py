"""The scorecard's tests on run tables whose verdict is known."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from batchlab.analysis.claims import evaluate_claims, seed_interval_rule, spread_knee_test
from batchlab.analysis.trend import trend_test
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


def exact_p_increasing(means) -> float:
    """Independent reference: the share of all orderings of the batch sizes whose rho reaches the observed one."""
    x = np.arange(len(means))
    observed = spearmanr(x, means).statistic
    rhos = [spearmanr(x, order).statistic for order in itertools.permutations(means)]
    return float(np.mean(np.asarray(rhos) >= observed - 1e-12))


def test_an_effect_each_batch_size_shares_across_its_seeds_is_no_evidence():
    """The null the old seed bootstrap failed: every seed of a batch size shares that batch size's offset (a data
    order, a rate that suits it), with no trend. Batch sizes are the units, so the p-value is that of the seed
    means' ordering among all orderings of 7 batch sizes, computed here by enumeration."""
    offsets = np.array([0.3, -0.2, 0.5, 0.1, 0.6, -0.1, 0.4])  # a rise-ish order, rho 0.43
    rng = np.random.default_rng(3)
    table = pd.DataFrame([{"batch_size": b, "seed": s, "val_loss": offsets[i] + 1e-4 * rng.normal()}
                          for i, b in enumerate(SIZES) for s in range(5)])
    result = trend_test(table, "batch_size", "val_loss", "increases_with_batch_size")
    means = table.groupby("batch_size")["val_loss"].mean().to_numpy()
    assert result["p_value"] == pytest.approx(exact_p_increasing(means), rel=1e-12)
    assert result["p_value"] > 0.05 and result["verdict"] == "inconclusive"


def test_one_seed_can_carry_a_trend_but_three_batch_sizes_cannot():
    """Seeds are not the units: one seed over 7 batch sizes (p = 1/5040) replicates; 3 batch sizes, whose best
    ordering has p = 1/6, never can."""
    one = trend_test(runs(0.1, 0.01, seeds=1), "batch_size", "val_loss", "increases_with_batch_size")
    assert one["p_value"] == pytest.approx(1 / 5040) and one["verdict"] == "replicated"
    three = runs(0.1, 0.01)
    three = three[three["batch_size"] <= 4]
    result = trend_test(three, "batch_size", "val_loss", "increases_with_batch_size")
    assert result["verdict"] == "inconclusive" and "3 batch sizes" in result["detail"]


def test_a_significant_trend_below_the_minimum_effect_is_not_replicated_as_such():
    """Four batch sizes in order: p = 1/24 < 0.05 and rho = 1; asking for rho >= 1.0 still passes, and the
    opposite claim is refuted only by the opposite direction's test (p = 1), so it stays inconclusive."""
    table = runs(0.1, 0.01)
    four = table[table["batch_size"] <= 8]
    up = trend_test(four, "batch_size", "val_loss", "increases_with_batch_size", min_effect=1.0)
    assert up["p_value"] == pytest.approx(1 / 24) and up["verdict"] == "replicated"
    down = trend_test(four, "batch_size", "val_loss", "decreases_with_batch_size", min_effect=0.5)
    assert down["p_value"] == pytest.approx(1.0) and down["verdict"] == "not replicated"  # p_opposite = 1/24


def test_diverged_runs_are_left_out_and_counted():
    table = runs(slope=0.1, noise=0.01)
    table.loc[table["batch_size"] == 64, "val_loss"] = np.nan
    result = trend_test(table, "batch_size", "val_loss", "increases_with_batch_size")
    assert result["n_excluded_runs"] == 5 and result["n_x"] == len(SIZES) - 1
    assert result["verdict"] == "replicated"


def test_seed_offsets_shared_by_every_batch_size_cancel_in_the_seed_means():
    # Each seed has its own offset, identical at every batch size, plus a small rise: the seed means carry the
    # rise alone, so it is detected although the offsets dwarf it.
    rng = np.random.default_rng(1)
    offsets = rng.normal(0, 10, 5)
    table = pd.DataFrame(
        [{"batch_size": b, "seed": s, "val_loss": offsets[s] + 0.01 * math.log2(b)} for b in SIZES for s in range(5)]
    )
    result = trend_test(table, "batch_size", "val_loss", "increases_with_batch_size")
    assert result["estimate"] == pytest.approx(1.0) and result["verdict"] == "replicated"


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
    assert card.loc[1, "n_units"] == 3 and "adjusted p-value" in card.loc[0, "rule"]
    assert card.loc[0, "p_adjusted"] == pytest.approx(1.5 / 5040)  # BH over 3 p-values, two of them 1/5040
    with pytest.raises(ValueError, match="no gradient spread"):
        evaluate_claims(claims[1:], runs(0.1, 0.01), None)
    with pytest.raises(ValueError, match="own batch sizes"):  # a table from before own-batch-size probes
        evaluate_claims(claims[1:], runs(0.1, 0.01), spread.drop(columns="probe"))


def test_runs_that_never_beat_the_baseline_are_left_out_of_claims_about_trained_models_and_named():
    """Sharpness speaks of minima: runs above the data's baseline loss, and unconverged eigenvalues, are left
    out and counted; the loss claim keeps every run (the paper's own fixed-epoch design)."""
    table = runs(0.1, 0.01)
    table["sharpness"] = table["batch_size"].astype(float)
    table["sharpness_converged"] = table["seed"] != 4
    baseline = 0.1 * math.log2(16) - 0.05  # batch sizes 16, 32 and 64 end above it
    claims = [Claim(id="sharp", source="K", metric="sharpness", expect="increases_with_batch_size"),
              Claim(id="loss", source="K", metric="val_loss", expect="increases_with_batch_size")]
    card = evaluate_claims(claims, table, baseline=baseline)
    sharp, loss = card.iloc[0], card.iloc[1]
    assert sharp["n_x"] == 4 and sharp["p_value"] == pytest.approx(1 / 24)  # batch sizes 1, 2, 4, 8
    assert sharp["left_out"].startswith("19 runs left out as not trained") and "16 (5)" in sharp["left_out"]
    assert "8 (1)" in sharp["left_out"] and "did not converge" in sharp["left_out"]
    assert loss["n_x"] == 7 and loss["left_out"] == ""


def test_below_five_seeds_a_seed_resampled_verdict_is_inconclusive_and_shows_the_range():
    result = {"statistic": "degradation_above_b_crit", "n_units": 3, "low": 0.1, "high": 0.2, "verdict": "replicated"}
    ruled = seed_interval_rule(result, [0.4, np.nan, 0.1, 0.3])
    assert ruled["verdict"] == "inconclusive" and (ruled["low"], ruled["high"]) == (0.1, 0.4)
    assert ruled["interval_kind"] == "range over 3 seeds" and "needs at least 5" in ruled["note"]
    assert seed_interval_rule({**result, "n_units": 2}, [0.2, 0.2])["interval_kind"] == "2 seeds, all equal"
    kept = seed_interval_rule({**result, "n_units": 5}, [])
    assert kept["verdict"] == "replicated" and kept["low"] == 0.1 and kept["interval_kind"] == "bootstrap over 5 seeds"


# ---------------------------------------------------------------- gradient spread falls, then flattens (Vaessen)


def test_spread_following_inverse_square_root_is_not_replicated():
    """The null: one model's sampling noise, spread = c B^-1/2 at every trained batch size: no knee."""
    result = spread_knee_test(own_spread_table(lambda b: 0.3 * b**-0.5), min_effect=0.25)
    assert result["slope_before"] == pytest.approx(-0.5, abs=0.05) and result["slope_after"] == pytest.approx(-0.5, abs=0.05)
    assert result["verdict"] == "not replicated"


def test_spread_with_a_plateau_is_replicated_and_its_knee_found():
    """Vaessen & van Leeuwen: falling as the batch doubles, then level (here B^-1/2 up to 16, flat after)."""
    result = spread_knee_test(own_spread_table(lambda b: 0.3 * min(b, 16) ** -0.5), min_effect=0.25)
    assert 8 <= result["knee"] <= 32 and result["estimate"] == pytest.approx(0.5, abs=0.1)
    assert result["verdict"] == "replicated"


def test_spread_knee_uses_the_last_checkpoint():
    table = own_spread_table(lambda b: 0.3 * min(b, 16) ** -0.5)
    early = (table["fraction"] == 0.5) & (table["probe"] == "own")
    table.loc[early, "spread"] = 0.3 * table.loc[early, "batch_size"] ** -0.5  # the null at the earlier checkpoint
    assert spread_knee_test(table, 0.25)["verdict"] == "replicated"


def test_a_spread_that_rises_never_reads_flattens():
    result = spread_knee_test(own_spread_table(lambda b: 0.3 * b**0.3), 0.25)
    assert result["verdict"] == "not replicated"


def test_noisy_spread_is_inconclusive():
    result = spread_knee_test(own_spread_table(lambda b: 0.3 * b**-0.4, noise=0.8), 0.25)
    assert result["verdict"] == "inconclusive"


# ---------------------------------------------------------------- samples seen vs steps (Vaessen)

CURVE_SIZES = [1, 4, 16, 64]


def curves(loss_of, n_train: int = 4096, seeds: int = 4, noise: float = 0.002, seed: int = 0,
           sizes=CURVE_SIZES) -> pd.DataFrame:
    """Logged curves of a fixed-budget sweep (one epoch); loss_of(samples_seen, step) gives the noiseless value."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in sizes:
        total = n_train // b
        for step in np.unique(np.geomspace(1, total, 20).round().astype(int)):
            for s in range(seeds):
                rows.append({"batch_size": b, "seed": s, "step": int(step), "samples_seen": int(step * b),
                             "val_loss": loss_of(step * b, step) + noise * rng.normal()})
    return pd.DataFrame(rows)


def test_samples_seen_predict_when_the_loss_follows_samples_and_not_when_it_follows_steps():
    """Six batch sizes (the regime below B_crit 32 of a sweep from 1), a curved loss: c is 1 when the loss follows
    samples seen and 0 when it follows steps, each inside a narrow interval."""
    from batchlab.analysis.claims import samples_predict_test

    six = [1, 2, 4, 8, 16, 32]
    by_samples = samples_predict_test(curves(lambda n, s: 1 / np.log1p(n), sizes=six), "val_loss", 0.5)
    by_steps = samples_predict_test(curves(lambda n, s: 1 / np.log1p(s), sizes=six), "val_loss", 0.5)
    assert by_samples["estimate"] == pytest.approx(1.0, abs=0.05) and by_samples["verdict"] == "replicated"
    assert by_steps["estimate"] == pytest.approx(0.0, abs=0.05) and by_steps["verdict"] == "not replicated"


def test_samples_seen_claim_on_pure_noise_is_inconclusive():
    from batchlab.analysis.claims import samples_predict_test

    result = samples_predict_test(curves(lambda n, s: 2.0, noise=0.5), "val_loss", 0.5)
    assert result["verdict"] == "inconclusive"


# ---------------------------------------------------------------- linear scaling up to B_crit (Goyal, McCandlish)


def budget_table(loss_of_b, seeds: int = 5, noise: float = 0.002, sizes=SIZES) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        [{"batch_size": b, "seed": s, "val_loss": loss_of_b(b) * (1 + noise * rng.normal()),
          "val_accuracy": 0.9 - (0.2 if b > 16 else 0.0) + noise * rng.normal()}
         for b in sizes for s in range(seeds)]
    )


def test_flat_until_b_crit_then_worse_is_replicated():
    from batchlab.analysis.b_crit_claims import degradation_test

    table = budget_table(lambda b: 0.30 if b <= 16 else 0.45)
    result = degradation_test(table, "val_loss", b_crit=20.0, tolerance=0.05, n_boot=300)
    assert result["estimate"] == pytest.approx(0.5, abs=0.01)
    assert result["verdict"] == "replicated"
    # higher-is-better metrics are flipped: a fall in accuracy is the degradation
    assert degradation_test(table, "val_accuracy", 20.0, 0.05, 300)["verdict"] == "replicated"


def test_degrading_below_b_crit_or_holding_beyond_it_is_not_replicated():
    from batchlab.analysis.b_crit_claims import degradation_test

    steady_rise = budget_table(lambda b: 0.3 * (1 + 0.2 * math.log2(b)))
    assert degradation_test(steady_rise, "val_loss", 20.0, 0.05, 300)["verdict"] == "not replicated"
    flat = budget_table(lambda b: 0.3)
    assert degradation_test(flat, "val_loss", 20.0, 0.05, 300)["verdict"] == "not replicated"


def test_linear_scaling_claim_without_room_below_b_crit_is_inconclusive():
    from batchlab.analysis.b_crit_claims import degradation_test

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
        Claim(id="a", source="x", metric="critical_batch_size", expect="increases_with_data_size", tolerance=0.1)
    with pytest.raises(ValidationError, match=r"minimum effect of predicted_by_samples_seen lies in \(0, 0.5\]"):
        Claim(id="a", source="x", metric="val_loss", expect="predicted_by_samples_seen", tolerance=0.6)
    assert Claim(id="a", source="x", metric="val_loss", expect="increases_with_batch_size", tolerance=0.3).tolerance == 0.3
    with pytest.raises(ValidationError, match=r"minimum effect of increases_with_batch_size lies in \(0, 1\]"):
        Claim(id="a", source="x", metric="val_loss", expect="increases_with_batch_size", tolerance=1.5)


TO_TARGET_SIZES = [2**k for k in range(11)]  # 1 .. 1024: B_crits of 4 to 512 have two batch sizes in each regime


def steps_of(b_crit_per_seed, sizes=TO_TARGET_SIZES, s_min: float = 100.0) -> pd.DataFrame:
    """Steps to target S(B) = S_min (1 + B_crit/B), one B_crit per seed (seed means fit S(B) exactly), at the
    train-to-target batch sizes (their own, as in a study, not the sweep's)."""
    return pd.DataFrame(
        [{"batch_size": b, "seed": s, "steps": s_min * (1 + bc / b), "reached": True}
         for s, bc in enumerate(b_crit_per_seed) for b in sizes]
    )


def test_b_crit_uncertainty_is_carried_into_the_linear_scaling_claim():
    """The same point B_crit (~22) and the same losses: replicated when the seeds agree on B_crit, inconclusive
    when they disagree so much that resampled B_crit often puts 32 (already worse) below it."""
    from batchlab.analysis.b_crit_claims import b_crit_of_seeds, degradation_test

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
    from batchlab.analysis.b_crit_claims import b_crit_of_seeds, degradation_test

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
    from batchlab.analysis.at_target import noise_at_crossing

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
    from batchlab.analysis.b_crit_claims import noise_scale_test

    rng = np.random.default_rng(0)
    steps = steps_of([40.0, 50.0, 60.0])
    near = noise_scale_test(noise_table(lambda b, s, f: 60 * math.exp(0.1 * rng.normal())), steps, 3.0, 400)
    assert near["estimate"] == pytest.approx(60 / 50, rel=0.1) and near["verdict"] == "replicated"
    assert near["n_units"] == 2 and "B_crit 50" in near["detail"]
    far = noise_scale_test(noise_table(lambda b, s, f: 500 * math.exp(0.1 * rng.normal())), steps, 3.0, 400)
    assert far["estimate"] == pytest.approx(10, rel=0.1) and far["verdict"] == "not replicated"


def test_runs_with_undefined_b_simple_are_left_out_and_counted():
    """A bias-corrected |G|^2 <= 0 leaves B_simple NaN: such runs are named apart and never enter the mean."""
    from batchlab.analysis.b_crit_claims import noise_scale_test

    steps = steps_of([50.0] * 3)
    defined = noise_scale_test(noise_table(lambda b, s, f: 50.0), steps, 3.0, 200)
    some = noise_scale_test(noise_table(lambda b, s, f: math.nan if b == 2 else 50.0), steps, 3.0, 200)
    n_at_2 = int((noise_at_crossing_of(steps)["batch_size"] == 2).sum())
    assert n_at_2 > 0 and some["n_excluded_runs"] == n_at_2 and defined["n_excluded_runs"] == 0
    assert f"{n_at_2} more left out: their bias-corrected |G|² was not positive" in some["detail"]
    assert "B_simple at the target 50 " in some["detail"] and "more left out" not in defined["detail"]


def noise_at_crossing_of(steps):
    from batchlab.analysis.at_target import noise_at_crossing

    return noise_at_crossing(noise_table(lambda b, s, f: 50.0), steps)


def test_noise_scale_claim_is_inconclusive_without_two_measured_seeds_or_a_measured_b_crit():
    from batchlab.analysis.b_crit_claims import noise_scale_test

    one_seed = noise_scale_test(noise_table(lambda b, s, f: 50.0, seeds=[0]), steps_of([50.0] * 3), 3.0, 200)
    assert one_seed["verdict"] == "inconclusive"
    beyond = noise_scale_test(noise_table(lambda b, s, f: 50.0), steps_of([5000.0] * 3), 3.0, 200)
    assert beyond["verdict"] == "inconclusive" and "above the largest batch size" in beyond["detail"]


def test_noise_scale_claim_in_the_scorecard():
    """Five seeds and a tuned rate: the ratio's seed interval decides. With 3 seeds, or a fixed rate (McCandlish
    et al.'s premise unmet), the same numbers are inconclusive and say why."""
    claim = Claim(id="gns", source="McCandlish", metric="gradient_noise_scale", expect="predicts_critical_batch")
    noise = noise_table(lambda b, s, f: 50.0 * (1 + 0.01 * s), seeds=list(range(5)))
    card = evaluate_claims([claim], runs(0.1, 0.01), None, n_boot=200, steps=steps_of([50.0] * 5), noise=noise,
                           lr_rule="tuned")
    assert card.loc[0, "statistic"] == "noise_scale_ratio" and card.loc[0, "verdict"] == "replicated"
    assert "within a factor f of 1" in card.loc[0, "rule"]
    fixed = evaluate_claims([claim], runs(0.1, 0.01), None, n_boot=200, steps=steps_of([50.0] * 5), noise=noise)
    assert fixed.loc[0, "verdict"] == "inconclusive" and "not tuned" in fixed.loc[0, "note"]
    assert "not tuned per batch size" in fixed.loc[0, "protocol"] and "Adam" not in fixed.loc[0, "protocol"]
    assert card.loc[0, "protocol"] == ""  # SGD with a tuned rate: McCandlish et al.'s own protocol
    adam = evaluate_claims([claim], runs(0.1, 0.01), None, n_boot=200, steps=steps_of([50.0] * 5), noise=noise,
                           lr_rule="tuned", optimizer="adam")
    assert adam.loc[0, "protocol"].startswith("B_simple of the plain gradients, though Adam trained the runs")
    three = evaluate_claims([claim], runs(0.1, 0.01), None, n_boot=200, steps=steps_of([50.0] * 3), lr_rule="tuned",
                            noise=noise_table(lambda b, s, f: 50.0 * (1 + 0.01 * s), seeds=[0, 1, 2]))
    assert three.loc[0, "verdict"] == "inconclusive" and three.loc[0, "interval_kind"] == "range over 3 seeds"
    assert three.loc[0, "low"] == pytest.approx(1.0, rel=0.05)


def test_two_seeds_with_b_crit_flagged_in_one_seeds_resample_give_no_interval():
    """Seed 0's own B_crit (400) has one batch size reached at or above 2 B_crit (1024), so it is not measured;
    seed 1's (20) and their mean (210) are. The resample {seed 0, seed 0}, a quarter of the draws, has no B_crit:
    leaving it out gave [value of {1, 1}, the estimate], an interval ending at the estimate. There is no 95%
    interval, the claim is inconclusive, and the detail says how few resamples two seeds give."""
    from batchlab.analysis.b_crit_claims import b_crit_of_seeds, degradation_test

    table = budget_table(lambda b: 0.30 if b <= 128 else 0.60, seeds=2, noise=0.0, sizes=TO_TARGET_SIZES)
    result = degradation_test(table, "val_loss", b_crit_of_seeds(steps_of([400.0, 20.0])), 0.05, 400)
    assert result["estimate"] == pytest.approx(1.0)  # B_crit 210: 256 and up lie above it, 100% worse than at 1
    assert math.isnan(result["low"]) and math.isnan(result["high"])
    assert result["verdict"] == "inconclusive"
    assert "B_crit 210 (no interval)" in result["detail"] and "no 95% interval" in result["detail"]
    assert "2 seeds give 3 distinct resamples" in result["detail"] and result["note"].startswith("no 95% interval")


# ---------------------------------------------------------------- the samples-seen claim within its regime


def test_samples_seen_claim_is_scored_at_or_below_b_crit():
    """B_crit fitted exactly to S = 100 (1 + 20/B) is 20, so of the curves' batch sizes 1, 4 and 16 are in the
    regime; with a B_crit of 4 only 1 and 4 are, too few to score; a B_crit the rule does not count as measured
    leaves the regime unknown."""
    from batchlab.analysis.claims import below_b_crit, evaluate_claims

    loss = curves(lambda n, s: 1 / np.log1p(n))
    inside, regime, why = below_b_crit(loss, steps_of([20.0, 20.0, 20.0, 20.0]))
    assert sorted(inside["batch_size"].unique()) == [1, 4, 16] and why == ""
    assert "B_crit = 20 (1, 4, 16)" in regime
    _, _, why = below_b_crit(loss, steps_of([4.0] * 4))
    assert why == "2 batch sizes lie at or below B_crit; the claim needs 3"
    _, _, why = below_b_crit(loss, steps_of([20.0] * 4, sizes=SIZES))  # only 64 at or above 2 B_crit: not measured
    assert "do not span both regimes: 4 at or below B_crit/2 = 10 and 1 at or above 2B_crit = 40" in why
    _, regime, why = below_b_crit(loss, None)
    assert "B_crit, and so the claim's regime, is unknown" in why
    claim = Claim(id="s", source="x", metric="val_loss", expect="predicted_by_samples_seen")
    card = evaluate_claims([claim], pd.DataFrame({"batch_size": [1], "seed": [0], "val_loss": [0.1]}), curves=loss,
                           steps=steps_of([4.0] * 4), n_boot=200)
    assert card.loc[0, "verdict"] == "inconclusive" and "the claim needs 3" in card.loc[0, "note"]
