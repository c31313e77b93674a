"""How the runs behind the critical batch size set their learning rate: tuned per batch size by steps to the target
(the premise of McCandlish et al.'s B_crit), tuned on final loss, or fixed; and, for a fixed rate, whether a rate
check at a second rate finds B_crit following the rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from batchlab.analysis import measured
from batchlab.analysis.cbs import fit_steps_model, seed_mean_steps, steps_matrix


RATE_COLUMNS = ["base_lr", "lr", "lr_candidates", "lr_choice", "lr_note", "tuning_trials", "tuning_trials_stopped",
                "tuning_steps_skipped"]


def tuned_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Per batch size of a rate-tuned train-to-target analysis: the rate its seeds trained at and how it was chosen
    (empty when the rate was not tuned)."""
    if "lr_tuned" not in runs or not runs["lr_tuned"].eq(True).any():  # NaN: a run of a cell that did not tune
        return pd.DataFrame(columns=["batch_size", *RATE_COLUMNS])
    return runs.groupby("batch_size", as_index=False)[RATE_COLUMNS].first()


ON_FINAL_LOSS = "tuned on final loss"  # a sweep's lr_rule: tuned, which B_crit does not count as tuned


RULE_WORDS = {"fixed": "fixed", "linear": "scaled linearly with the batch size",
              "sqrt": "scaled with the square root of the batch size"}  # optim.lr_rule, as a page says it


@dataclass(frozen=True)
class RateProtocol:
    """How the runs behind B_crit set their learning rate: rule "tuned" (per batch size by steps to the target),
    ON_FINAL_LOSS, or the rate rule they trained under; the batch sizes whose tuned rate is not trusted; and why a
    fixed rate's B_crit is rate-limited ('' when a rate check did not find it so, or there was none)."""

    rule: str
    doubtful: tuple[int, ...] = ()
    rate_limited: str = ""

    @property
    def tuned(self) -> bool:
        return self.rule == "tuned"

    @property
    def text(self) -> str:
        if self.tuned:
            return "learning rate tuned per batch size by steps to the target"
        if self.rule == ON_FINAL_LOSS:
            return "learning rate tuned on final validation loss, not by steps to the target"
        return f"learning rate {RULE_WORDS.get(self.rule, self.rule)}, not tuned per batch size"


def rate_protocol(runs: pd.DataFrame, rates: pd.DataFrame | None = None, critical: pd.DataFrame | None = None) -> RateProtocol:
    """How the runs behind B_crit set their rate, and the batch sizes whose tuned rate is not trusted (at the grid's
    edge, or no rate reached the target). rates: tuned_rates(runs), when already computed; critical: the
    critical-batch table, whose rate check may find a fixed rate's B_crit rate-limited."""
    rates = tuned_rates(runs) if rates is None else rates
    if rates.empty:
        rule = runs["lr_rule"].iloc[0] if "lr_rule" in runs and len(runs) else "fixed"
        limited = rate_limit_reason(critical) if critical is not None else ""
        return RateProtocol(ON_FINAL_LOSS if rule == "tuned" else str(rule), rate_limited=limited)
    noted = rates["lr_note"].map(lambda note: isinstance(note, str) and note != "").astype(bool)
    doubtful = sorted(int(b) for b in rates.loc[noted, "batch_size"])
    return RateProtocol("tuned", tuple(doubtful))


def rate_check(target_runs: pd.DataFrame | None, b_crit: float) -> tuple[pd.DataFrame, str]:
    """B_crit refitted to a rate check's runs (the same seeds trained at another multiple of the rate) as a table
    row, and why the study's B_crit is rate-limited ('' when it is not, or there is no check).

    Rate-limited: both fits finite and more than RATE_LIMIT_FACTOR apart (moved; a refit of 0 counts);
    with one rate for every batch size S(B) flattens where the rate binds, and B_crit then measures the rate."""
    if target_runs is None or "rate_check_steps" not in target_runs:
        return pd.DataFrame(), ""
    factor = float((target_runs["rate_check_base_lr"] / target_runs["base_lr"]).median())
    steps = pd.DataFrame({"batch_size": target_runs["batch_size"], "seed": target_runs["seed"],
                          "steps": target_runs["rate_check_steps"].astype(float)})
    steps["reached"] = np.isfinite(steps["steps"])
    sizes, _, grid = steps_matrix(steps)
    mean = seed_mean_steps(grid, np.arange(grid.shape[1]))
    reached = sizes[np.isfinite(mean)]
    try:
        fit = fit_steps_model(sizes, mean)
        estimate, rmse = fit.b_crit, fit.rmse_log
    except ValueError:
        estimate, rmse = math.nan, math.nan
    limited = ""
    if moved(b_crit, estimate, factor):
        limited = (f"rate-limited: refitted with the same seeds at {factor:g}x the rate, B_crit moves from {b_crit:.3g} "
                   f"to {estimate:.3g}, more than {measured.RATE_LIMIT_FACTOR:g}x: the fixed rate binds (McCandlish "
                   "et al. tune it per batch size)")
    row = {"quantity": "b_crit_rate_check", "estimate": estimate, "low": np.nan, "high": np.nan, "level": np.nan,
           "n_boot_ok": 0, "n_excluded": int((~steps["reached"]).sum()), "rmse_log": rmse,
           "method": f"S(B) fit at {factor:g}x the rate (rate check)",
           "definition": f"B_crit of the same seeds trained at {factor:g}x the study's rate ({len(reached)} batch sizes "
           "reached the target); the study's B_crit is rate-limited when the two differ by more than "
           f"{measured.RATE_LIMIT_FACTOR:g}x",
           "flag": measured.flag("b_crit", estimate, reached, rmse), "rate_limited": limited}
    return pd.DataFrame([row]), limited


def moved(b_crit: float, estimate: float, factor: float) -> bool:
    """Whether B_crit refitted at factor x the rate moved more than RATE_LIMIT_FACTOR from the study's b_crit (both
    finite, the study's positive). A refit of exactly 0 (steps that no longer fall with B drive the fit's B_crit to
    exp(-inf)) lies further from a positive B_crit than any factor, as a refit of 1e-300 already does: it is
    rate-limited when the rates are RATE_LIMIT_SPAN apart. measured.rate_limited, which divides, takes the rest."""
    if not (math.isfinite(b_crit) and b_crit > 0 and math.isfinite(estimate) and estimate >= 0):
        return False
    if estimate == 0:
        return factor >= measured.RATE_LIMIT_SPAN or factor <= 1 / measured.RATE_LIMIT_SPAN
    return measured.rate_limited({1.0: b_crit, factor: estimate})


def rate_limit_reason(table: pd.DataFrame) -> str:
    """The critical-batch table's rate-limit reason ('' when B_crit is not rate-limited or was not checked)."""
    if "rate_limited" not in table:
        return ""
    reasons = table.loc[table["quantity"] == "b_crit_rate_check", "rate_limited"]
    return reasons.iloc[0] if len(reasons) and isinstance(reasons.iloc[0], str) else ""  # NaN: an all-empty column
