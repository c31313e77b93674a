"""The rule for what counts as a measured critical batch size, on S(B) tables whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.cbs import bootstrap_fit, fit_steps_model
from batchlab.analysis.measured import MAX_RMSE_LOG, flag, flag_reasons, measured_b_crit
from reference_fits import reference_steps_fit

SIZES = 2.0 ** np.arange(11)  # 1 .. 1024
# Mean steps to the 80% target in the default EHR run (2026-11-26): flat, the last batch size never got there.
EHR_FLAT = [17.4, 15.9, 14.9, 14.4, 14.0, 13.6, 13.4, 13.3, 13.2, 13.5, math.nan]


def flags_of(sizes, steps) -> dict[str, str]:
    """Every estimate's flag, as the critical-batch table writes it."""
    table = pd.DataFrame({"batch_size": sizes, "seed": 0, "steps": steps, "reached": np.isfinite(steps)})
    out = bootstrap_fit(table, n_boot=0).set_index("quantity")
    reached = np.asarray(sizes)[np.isfinite(steps)]
    return {q: flag(q, out.loc[q, "estimate"], reached, out.loc[q, "rmse_log"]) for q in out.index}


def test_the_flat_ehr_table_gives_no_plain_number():
    fit = fit_steps_model(SIZES, EHR_FLAT)
    reached = np.isfinite(EHR_FLAT)
    s_min, b_crit = reference_steps_fit(SIZES[reached], np.array(EHR_FLAT)[reached])
    assert fit.b_crit == pytest.approx(b_crit, rel=1e-6) and fit.s_min == pytest.approx(s_min, rel=1e-6)
    assert b_crit < 1  # below the smallest batch size, the flag's premise
    flags = flags_of(SIZES, EHR_FLAT)
    assert "B_crit = 0.3" in flags["b_crit"] and "below the smallest batch size that reached the target (1)" in flags["b_crit"]
    assert "B_20 = 0.06" in flags["b_20"] and "below" in flags["b_20"]
    assert "already fails at the second batch size" in flags["b_20_empirical"]
    assert flags["s_min"] == ""  # S_min is a number of steps, measured here
    b_crit, reason = measured_b_crit(SIZES, np.array(EHR_FLAT))
    assert b_crit == pytest.approx(fit.b_crit) and reason == flags["b_crit"]


def test_a_b_crit_inside_the_data_with_a_good_fit_is_measured():
    steps = 1000 * (1 + 64 / SIZES)
    assert flags_of(SIZES, steps) == dict.fromkeys(["s_min", "b_crit", "b_20", "b_20_empirical"], "")


def test_perfect_scaling_throughout_puts_b_crit_above_the_data():
    steps = 1000 * (1 + 1e5 / SIZES)  # B_crit = 100,000: still halving at 1024
    flags = flags_of(SIZES, steps)
    assert "above the largest batch size that reached the target (1024)" in flags["b_crit"]
    assert "B_20 = 2e+04" in flags["b_20"]
    assert "still holds at the largest batch size reached: B_20 is at least 1024" in flags["b_20_empirical"]


def test_unreached_batch_sizes_narrow_the_range():
    steps = 1000 * (1 + 64 / SIZES)
    steps[SIZES > 32] = np.nan  # only 1..32 reached: B_crit = 64 is now beyond the data
    flags = flags_of(SIZES, steps)
    assert "above the largest batch size that reached the target (32)" in flags["b_crit"]
    # B_20 = 12.8 lies inside 1..32, but its B_crit (64) has no batch size at or above 128 reached
    assert flags["b_20"] == ("the batch sizes that reached the target do not span both regimes: 6 at or below "
                             "B_crit/2 = 32 and 0 at or above 2B_crit = 128 (the rule asks for 2 of each)")


@pytest.mark.parametrize(("reached", "below", "above"), [
    ([4, 8, 16, 32, 64], 2, 2),  # B_crit 16: 4 and 8 at or below 8, 32 and 64 at or above 32
    ([8, 16, 32, 64], 1, 2),
    ([4, 8, 16, 32], 2, 1),
    ([9, 16, 31, 64], 0, 1),  # just inside neither threshold
])
def test_a_b_crit_is_measured_only_with_two_batch_sizes_clearly_in_each_regime(reached, below, above):
    reasons = flag_reasons("b_crit", 16.0, reached, 0.0)
    if below >= 2 and above >= 2:
        assert reasons == []
    else:
        assert reasons == [f"the batch sizes that reached the target do not span both regimes: {below} at or below "
                           "B_crit/2 = 8 and " f"{above} at or above 2B_crit = 32 (the rule asks for 2 of each)"]
    with_two = [2, *reached]  # B_20 = 3.2 inside the batch sizes: it stands on the same fit, with the same span
    assert flag_reasons("b_20", 16.0 / 5, with_two, 0.0) == flag_reasons("b_crit", 16.0, with_two, 0.0)
    assert flag_reasons("s_min", 100.0, reached, 0.0) == []  # the steps at large batch sizes: not the span's concern


def test_fewer_than_four_batch_sizes_is_flagged_for_every_estimate():
    sizes, steps = SIZES[3:6], 1000 * (1 + 16 / SIZES[3:6])  # 8, 16, 32: B_crit = 16 inside, fit exact
    flags = flags_of(sizes, steps)
    assert all("only 3 batch sizes reached the target (the rule asks for 4)" in f for f in flags.values())
    assert flag_reasons("b_crit", 16.0, [4, 8, 32, 64], 0.0) == []


def test_a_poor_fit_is_flagged_by_its_log_rmse():
    wiggle = np.exp(0.3 * (-1.0) ** np.arange(len(SIZES)))  # alternating +-0.3 in log around the model
    steps = 1000 * (1 + 64 / SIZES) * wiggle
    fit = fit_steps_model(SIZES, steps)
    assert fit.rmse_log > MAX_RMSE_LOG
    flags = flags_of(SIZES, steps)
    assert f"misses the steps by {fit.rmse_log:.2f} in log" in flags["b_crit"]
    assert "misses" not in flags["b_20_empirical"]  # the model-free rule has no fit to miss
    mild = 1000 * (1 + 64 / SIZES) * np.exp(0.05 * (-1.0) ** np.arange(len(SIZES)))
    assert flags_of(SIZES, mild)["b_crit"] == ""


def test_no_estimate_is_flagged_as_not_estimated():
    assert flag("b_crit", math.nan, [1, 2], math.nan) == "B_crit could not be estimated (2 batch sizes reached the target)"
    b_crit, reason = measured_b_crit(np.array([1.0, 2.0, 4.0]), np.array([10.0, np.nan, np.nan]))
    assert math.isnan(b_crit) and "could not be estimated" in reason
