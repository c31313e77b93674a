"""How the runs set their rate, and the rate check's table row, on small tables whose answers are written out by hand:
which runs count as tuned, the rule a page names, the check's rate factor, count of unreached runs and reached
batch sizes, and the edges of the rate-limit condition."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.rates import (
    ON_FINAL_LOSS,
    RATE_COLUMNS,
    RateProtocol,
    rate_check,
    rate_limit_reason,
    rate_protocol,
    tuned_rates,
)

SIZES = [2**k for k in range(11)]


def tuned_runs(lr_tuned, notes=("", "", "")) -> pd.DataFrame:
    """Two seeds at batch sizes 4, 8, 16; each batch size's rate and note given once per run."""
    rows = []
    for b, lr, note in zip([4, 8, 16], [0.01, 0.02, 0.04], notes):
        for seed in (0, 1):
            row = {"batch_size": b, "seed": seed, "lr_tuned": lr_tuned, "lr_rule": "fixed"}
            row.update({c: 0 for c in RATE_COLUMNS})
            row.update({"base_lr": lr, "lr": lr * (1 + seed), "lr_note": note})
            rows.append(row)
    return pd.DataFrame(rows)


def test_tuned_rates_take_each_batch_sizes_first_run():
    rates = tuned_rates(tuned_runs(True))
    assert list(rates.columns) == ["batch_size", *RATE_COLUMNS]
    assert rates["batch_size"].tolist() == [4, 8, 16]
    assert rates["lr"].tolist() == [0.01, 0.02, 0.04]  # seed 0's rate, not seed 1's double


@pytest.mark.parametrize("flag", [False, None, np.nan])
def test_runs_not_tuned_give_no_rates(flag):
    rates = tuned_rates(tuned_runs(flag))
    assert rates.empty and list(rates.columns) == ["batch_size", *RATE_COLUMNS]


def test_runs_without_the_tuned_column_give_no_rates():
    assert tuned_rates(tuned_runs(True).drop(columns=["lr_tuned"])).empty


def test_one_tuned_run_is_enough():
    runs = tuned_runs(False)
    runs.loc[3, "lr_tuned"] = True
    assert tuned_rates(runs)["batch_size"].tolist() == [4, 8, 16]


def test_the_protocol_of_tuned_runs_lists_the_doubtful_batch_sizes_in_order():
    runs = tuned_runs(True, notes=("", "at the grid's edge", None))
    runs.loc[runs["batch_size"] == 4, "lr_note"] = "no rate reached the target"
    protocol = rate_protocol(runs)
    assert protocol == RateProtocol("tuned", (4, 8), "")
    assert protocol.tuned and protocol.text == "learning rate tuned per batch size by steps to the target"
    assert all(isinstance(b, int) for b in protocol.doubtful)


def test_the_protocol_of_untuned_runs_names_their_rule():
    runs = tuned_runs(False).assign(lr_rule="sqrt")
    protocol = rate_protocol(runs)
    assert protocol == RateProtocol("sqrt") and not protocol.tuned
    assert protocol.text == "learning rate scaled with the square root of the batch size, not tuned per batch size"
    assert rate_protocol(runs.assign(lr_rule="linear")).text == (
        "learning rate scaled linearly with the batch size, not tuned per batch size")
    assert rate_protocol(runs.assign(lr_rule="fixed")).text == "learning rate fixed, not tuned per batch size"
    assert RateProtocol("cosine").text == "learning rate cosine, not tuned per batch size"


def test_a_sweep_tuned_on_final_loss_is_not_tuned_for_b_crit():
    protocol = rate_protocol(tuned_runs(False).assign(lr_rule="tuned"))
    assert protocol.rule == ON_FINAL_LOSS and not protocol.tuned
    assert protocol.text == "learning rate tuned on final validation loss, not by steps to the target"


def test_runs_without_a_rule_or_without_rows_are_fixed():
    assert rate_protocol(tuned_runs(False).drop(columns=["lr_rule"])).rule == "fixed"
    assert rate_protocol(tuned_runs(False).iloc[:0]).rule == "fixed"


def test_rates_passed_in_are_used_instead_of_the_runs():
    runs = tuned_runs(False)
    rates = tuned_rates(tuned_runs(True, notes=("", "", "edge")))
    assert rate_protocol(runs, rates=rates) == RateProtocol("tuned", (16,))


def test_a_fixed_rule_carries_the_rate_check_reason_of_its_table():
    runs = tuned_runs(False)
    table = pd.DataFrame([{"quantity": "b_crit", "rate_limited": "no"},
                          {"quantity": "b_crit_rate_check", "rate_limited": "moved 4x"}])
    assert rate_protocol(runs, critical=table) == RateProtocol("fixed", (), "moved 4x")
    assert rate_protocol(runs).rate_limited == ""


def test_rate_limit_reason_of_tables_without_one():
    assert rate_limit_reason(pd.DataFrame({"quantity": ["b_crit"]})) == ""
    assert rate_limit_reason(pd.DataFrame({"quantity": ["b_crit"], "rate_limited": ["x"]})) == ""
    assert rate_limit_reason(pd.DataFrame({"quantity": ["b_crit_rate_check"], "rate_limited": [np.nan]})) == ""


def check_runs(b_crit: float, check_b_crit: float, factors=(4.0,), unreached=()) -> pd.DataFrame:
    """Two seeds' exact S(B) curves at rate 0.01 and their twins at factor x 0.01 (one factor per seed, cycled)."""
    rows = []
    for b in SIZES:
        for seed in (0, 1, 2):
            factor = factors[seed % len(factors)]
            check = math.nan if b in unreached else 100 * (1 + check_b_crit / b)
            rows.append({"batch_size": b, "seed": seed, "base_lr": 0.01, "steps": 100 * (1 + b_crit / b),
                         "rate_check_base_lr": 0.01 * factor, "rate_check_steps": check})
    return pd.DataFrame(rows)


def test_the_rate_check_row_counts_unreached_runs_and_reached_batch_sizes():
    row, reason = rate_check(check_runs(16.0, 20.0, unreached=(1024, 512)), 16.0)
    assert reason == ""  # 20 vs 16: within 2x
    r = row.iloc[0]
    assert r["quantity"] == "b_crit_rate_check" and r["estimate"] == pytest.approx(20.0, rel=1e-6)
    assert r["n_excluded"] == 6 and r["n_boot_ok"] == 0  # two batch sizes x three seeds
    assert r["rmse_log"] == pytest.approx(0.0, abs=1e-6)
    assert r["method"] == "S(B) fit at 4x the rate (rate check)"
    assert r["definition"] == ("B_crit of the same seeds trained at 4x the study's rate (9 batch sizes reached the "
                               "target); the study's B_crit is rate-limited when the two differ by more than 2x")
    assert r["flag"] == "" and r["rate_limited"] == ""
    assert all(math.isnan(r[c]) for c in ("low", "high", "level"))


def test_the_rate_factor_is_the_median_over_runs():
    row, _ = rate_check(check_runs(16.0, 20.0, factors=(4.0, 8.0, 8.0)), 16.0)
    assert row.loc[0, "method"] == "S(B) fit at 8x the rate (rate check)"
    row, _ = rate_check(check_runs(16.0, 20.0, factors=(0.25,)), 16.0)
    assert row.loc[0, "method"] == "S(B) fit at 0.25x the rate (rate check)"


def test_a_check_on_some_seeds_only_averages_the_seeds_that_reached():
    runs = check_runs(16.0, 64.0)
    runs.loc[runs["seed"] == 2, "rate_check_steps"] = np.nan  # one seed's twins all missed: the rest still fit
    row, reason = rate_check(runs, 16.0)
    assert row.loc[0, "estimate"] == pytest.approx(64.0, rel=1e-6) and row.loc[0, "n_excluded"] == 11
    assert reason.startswith("rate-limited: refitted with the same seeds at 4x the rate, B_crit moves from 16 to 64")


@pytest.mark.parametrize(("b_crit", "check", "limited"), [
    (0.9, 3.6, True),  # a study B_crit below 1 is still a B_crit
    (2.0, 0.5, True),  # and so is a refitted one
    (math.nan, 64.0, False),  # the study's B_crit not estimated: nothing to compare
    (0.0, 64.0, False),
    (-1.0, 64.0, False),
])
def test_the_rate_limit_condition_at_small_and_missing_values(b_crit, check, limited):
    row, reason = rate_check(check_runs(16.0, check), b_crit)
    assert row.loc[0, "estimate"] == pytest.approx(check, rel=1e-6)
    assert bool(reason) is limited
    assert row.loc[0, "rate_limited"] == reason


def test_a_check_without_runs_gives_no_row():
    row, reason = rate_check(None, 16.0)
    assert row.empty and reason == ""


def test_the_rate_check_rows_flag_names_b_crit():
    row, _ = rate_check(check_runs(16.0, 64.0).assign(rate_check_steps=np.nan), 16.0)
    assert row.loc[0, "flag"] == "B_crit could not be estimated (0 batch sizes reached the target)"
    row, _ = rate_check(check_runs(16.0, 4096.0), 16.0)
    assert row.loc[0, "flag"] == ("B_crit = 4.1e+03 lies above the largest batch size that reached the target "
                                  "(1024)")


@pytest.mark.parametrize(("factors", "limited"), [((4.0,), True), ((0.25,), True), ((2.0,), False)])
def test_a_refitted_b_crit_of_zero_against_a_positive_one_is_rate_limited(factors, limited):
    # steps that grow with the batch size, 100 (1 - 0.9/B): the fit's B_crit runs down to exp(-inf) = 0 exactly.
    # 16 against 0 is further apart than any factor (as 16 against 1e-300 already is): rate-limited when the two
    # rates are at least 4x apart, as every rate check is; at 2x the check does not count
    row, reason = rate_check(check_runs(16.0, -0.9, factors=factors), 16.0)
    assert row.loc[0, "estimate"] == 0.0 and row.loc[0, "rate_limited"] == reason
    expected = (f"rate-limited: refitted with the same seeds at {factors[0]:g}x the rate, B_crit moves from 16 to 0, "
                "more than 2x: the fixed rate binds (McCandlish et al. tune it per batch size)")
    assert reason == (expected if limited else "")


def test_a_study_b_crit_of_zero_is_not_compared():
    assert rate_check(check_runs(16.0, -0.9), 0.0)[1] == ""  # no positive B_crit on either side


def test_the_rule_of_a_single_run():
    assert rate_protocol(tuned_runs(False).assign(lr_rule="sqrt").iloc[:1]).rule == "sqrt"
