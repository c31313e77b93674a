"""The replication scorecard: each published claim a study lists, tested on its runs, with a verdict.

One test per claim kind (batchlab.analysis.verdict_rules holds each statistic's words and rules):
- trend claims ("metric increases with batch size"): Spearman's rho of the seed means on batch size, a
  permutation test with the batch sizes as the units (batchlab.analysis.trend);
- "the small-batch advantage vanishes at equal steps" (Hoffer et al. 2017): the same test on the sweep and
  on the study's equal-steps arm (batchlab.analysis.equal_steps);
- "gradient spread falls, then flattens" (Vaessen & van Leeuwen 2024): a knee in log-log, calibrated by
  simulation (batchlab.analysis.spread_shape);
- "samples seen predict the metric better than steps or batch size", scored at or below the measured B_crit;
  "the same budget reaches the same metric up to B_crit, not beyond"; "the noise scale predicts B_crit":
  seed-bootstrap intervals, which give a verdict only with at least MIN_SEEDS_FOR_INTERVAL seeds (below it the
  seeds' range is shown and the claim is inconclusive);
- claims across a scaling grid (Zhang et al. 2025) are tested in batchlab.analysis.scaling.
Claims about trained models score only the runs that beat the data's baseline (batchlab.analysis.trained); a
claim resting on an unmeasured B_crit is inconclusive with the reason; a study's p-values are adjusted by
Benjamini-Hochberg over its claims; each line notes where the run departs from its paper's protocol.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from batchlab.analysis.b_crit_claims import b_crit_of_seeds, degradation_test, noise_scale_test
from batchlab.analysis.equal_steps import equal_steps_test
from batchlab.analysis.rates import RateProtocol
from batchlab.analysis.samples_claim import below_b_crit, samples_predict_test
from batchlab.analysis.significance import MIN_SEEDS_FOR_INTERVAL, benjamini_hochberg
from batchlab.analysis.spread_shape import flattening_test
from batchlab.analysis.trained import left_out, trained_mask
from batchlab.analysis.trend import trend_test
from batchlab.analysis.verdict_rules import SEED_RESAMPLED, STATISTICS
from batchlab.config import RateGrid

def own_spread(spread: pd.DataFrame) -> pd.DataFrame:
    """Each measured run's gradient spread at its own batch size at its last checkpoint (log taken where positive)."""
    if "probe" not in spread:
        return spread.iloc[:0].assign(log_spread=[])
    own = spread[spread["probe"] == "own"]
    final = own[own["fraction"] == own.groupby(["batch_size", "seed"])["fraction"].transform("max")]
    values = final["spread"].to_numpy(dtype=float)
    return final.assign(log_spread=np.log(np.where(values > 0, values, np.nan)))


def spread_knee_test(spread: pd.DataFrame, min_effect: float, alpha: float = 0.05, level: float = 0.95) -> dict:
    """Does the spread at each run's own batch size fall, then level off (a knee in log-log)? Seeds are averaged,
    batch sizes are the units (batchlab.analysis.spread_shape)."""
    own = own_spread(spread)
    finite = own[np.isfinite(own["log_spread"])]
    grid = own.pivot_table(index="batch_size", columns="seed", values="log_spread", aggfunc="mean", dropna=False)
    grid = grid.sort_index()
    result = flattening_test(grid.index.to_numpy(dtype=float), grid.to_numpy(dtype=float), min_effect, alpha)
    n_seeds = result.pop("n_seeds", grid.shape[1])
    result.pop("level", None)
    return {
        **result,
        "level": 1 - 2 * alpha,
        "n_boot": 0,
        "n_units": int(n_seeds),
        "n_excluded_runs": int(len(own) - len(finite)),
        "min_effect": min_effect,
        "interval_kind": f"parametric bootstrap over {result.get('n_x', 0)} batch sizes",
    }


SCORECARD_COLUMNS = [
    "claim", "source", "metric", "expect", "statistic", "symbol", "estimate", "low", "high", "level", "n_boot",
    "n_x", "n_units", "n_excluded_runs", "at_smallest", "at_largest", "p_value", "p_adjusted", "p_refute",
    "min_effect", "interval_kind", "left_out", "protocol", "detail", "note", "verdict", "rule",
]


def seed_interval_rule(result: dict, seed_values) -> dict:
    """A verdict that rests on resampled seeds needs MIN_SEEDS_FOR_INTERVAL of them; with fewer the claim is
    inconclusive and the interval becomes the seeds' own range, labelled as such (never a collapsed interval)."""
    n = int(result.get("n_units") or 0)
    if n >= MIN_SEEDS_FOR_INTERVAL:
        return {**result, "interval_kind": f"bootstrap over {n} seeds"}
    values = np.asarray(seed_values, dtype=float)
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if len(values) else (math.nan, math.nan)
    kind = (
        f"range over {len(values)} seeds" if len(values) > 1 and low < high
        else f"{len(values)} seeds, all equal" if len(values) > 1
        else "one seed" if len(values) else "no interval"
    )
    note = f"{n} seeds: a verdict from resampled seeds needs at least {MIN_SEEDS_FOR_INTERVAL}"
    return {**result, "low": low, "high": high, "interval_kind": kind, "verdict": "inconclusive",
            "note": "; ".join(filter(None, [note, result.get("note", "")]))}


REFUTED_BY_P = ("spearman_rho", "equal_steps_rho")  # statistics whose "not replicated" rests on a p-value


def adjust_for_multiplicity(card: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Benjamini-Hochberg over the study's claims: each p-value in the claimed direction (p_value) and each
    refuting one (p_refute) is adjusted within its family, and a verdict whose adjusted p exceeds alpha
    becomes inconclusive, saying so."""
    card = card.copy()
    card["p_adjusted"] = benjamini_hochberg(card["p_value"].astype(float).to_numpy())
    refute = benjamini_hochberg(card["p_refute"].astype(float).to_numpy())
    for i in card.index:
        verdict, p_adj = card.at[i, "verdict"], card.at[i, "p_adjusted"]
        if verdict == "replicated" and math.isfinite(p_adj) and p_adj > alpha:
            why = f"adjusted p = {p_adj:.3g} > {alpha:g} over the study's {int(card['p_value'].notna().sum())} tested claims"
        elif verdict == "not replicated" and card.at[i, "statistic"] in REFUTED_BY_P and refute[i] > alpha:
            why = f"adjusted refuting p = {refute[i]:.3g} > {alpha:g}"
        else:
            continue
        card.at[i, "verdict"] = "inconclusive"
        card.at[i, "note"] = "; ".join(filter(None, [card.at[i, "note"], why]))
    return card


ADAM_NOISE_SCALE = (
    "B_simple of the plain gradients, though Adam trained the runs: McCandlish et al. derived B_crit ≈ B_noise for "
    "SGD, and an Adam-specific noise scale (of preconditioned gradients) is not measured"
)


ON_B_CRIT = ("degradation_above_b_crit", "samples_exponent", "noise_scale_ratio")  # statistics that rest on B_crit


def arm_steps(claim, equal_steps: pd.DataFrame | None) -> int | None:
    """The updates every run of the equal-steps arm took, for a claim scored on it (None for the sweep's claims)."""
    if claim.arm != "equal_steps" or equal_steps is None or "steps" not in equal_steps or equal_steps.empty:
        return None
    return int(equal_steps["steps"].max())


def protocol_note(claim, lr_rule: str, optimizer: str = "sgd", doubtful_rates: tuple = (), arm_updates: int | None = None) -> str:
    """Where this run departs from the protocol of the paper behind the claim ('' where it does not).

    For the noise-scale claim lr_rule is the protocol of the runs B_crit comes from, and doubtful_rates the batch
    sizes whose tuned rate lies at the grid's edge (or where no rate reached the target); arm_updates the steps of the
    equal-steps arm's runs, for a claim scored on it."""
    updates = "?" if arm_updates is None else f"{arm_updates:,}"
    if claim.expect == "predicts_critical_batch":
        grid = RateGrid()
        trials = (grid.points + grid.extensions) * len(grid.tuning_seeds)
        notes = [f"{RateProtocol(lr_rule).text}; McCandlish et al.'s B_crit ≈ B_noise assumes it tuned at each batch size (to_target."
                 "lr_tuning tunes it: a grid of trials per batch size on tuning seeds, as config/paper.yaml runs; the "
                 f"default grid trains up to {trials} trials per batch size beside its measured seeds, stopping those "
                 "that can no longer win)"] if lr_rule != "tuned" else []
        if doubtful_rates:
            notes.append(f"tuned rate at the grid's edge (or no rate reached the target) at batch size"
                         f"{'s' if len(doubtful_rates) > 1 else ''} {', '.join(map(str, doubtful_rates))}")
        return "; ".join(notes + ([ADAM_NOISE_SCALE] if optimizer == "adam" else []))
    if claim.metric == "gradient_spread" and claim.arm == "equal_steps":
        return (f"spread at equal iterations ({updates} updates per run, the equal-steps arm) at each run's own "
                "batch size, as Vaessen & van Leeuwen compared theirs (wav2vec 2.0, 400k steps, at several checkpoints); "
                "one checkpoint here, the arm's end")
    if claim.metric == "gradient_spread":
        return ("spread at the end of an equal-epoch budget; Vaessen & van Leeuwen compared runs at equal iterations "
                "(wav2vec 2.0, 400k steps): `arm: equal_steps` scores it so")
    if claim.arm == "equal_steps":
        return f"scored at equal iterations ({updates} updates per run, the equal-steps arm)"
    if claim.metric == "sharpness":
        return "largest Hessian eigenvalue, the common proxy for Keskar et al.'s ε-box sharpness"
    if claim.expect == "vanishes_at_equal_steps":
        return ("equal steps at a fixed learning rate; Hoffer et al. also adapted the rate and ghost batch norm to "
                "the batch size ('regime adaptation')")
    if claim.expect == "holds_until_critical_batch" and lr_rule != "tuned":
        return f"learning rate {lr_rule}, not tuned per batch size as Shallue et al. tuned it"
    return ""


def scorecard_row(claim, result: dict, level: float, n_boot: int) -> dict:
    """One scorecard row: the claim, its test's numbers, the verdict and the rule that gave it."""
    row = {"claim": claim.id, "source": claim.source, "metric": claim.metric, "expect": claim.expect,
           "level": level, "n_boot": n_boot, "detail": "", "note": "", "left_out": "", "protocol": "", **result}
    row["rule"] = STATISTICS[row["statistic"]][row["verdict"]]
    row["symbol"] = STATISTICS[row["statistic"]]["symbol"]
    return {k: row.get(k) for k in SCORECARD_COLUMNS}


def evaluate_claims(
    claims,
    table: pd.DataFrame,
    spread: pd.DataFrame | None = None,
    n_boot: int = 2000,
    curves: pd.DataFrame | None = None,
    steps: pd.DataFrame | None = None,
    noise: pd.DataFrame | None = None,
    level: float = 0.95,
    alpha: float = 0.05,
    n_perm: int = 20000,
    baseline: float = math.nan,
    lr_rule: str = "fixed",
    equal_steps: pd.DataFrame | None = None,
    optimizer: str = "sgd",
    critical_protocol: RateProtocol | None = None,
    equal_steps_spread: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One scorecard row per per-study claim (claims across a scaling grid are evaluated in batchlab.analysis.scaling).

    steps: the per-run steps to target (claims on B_crit); noise: the gradient statistics (the noise-scale claim);
    baseline: the data's constant-prediction validation loss, which a run must beat to count as trained for the
    claims about trained models (batchlab.analysis.trained); lr_rule: the study's learning-rate protocol;
    equal_steps: the runs of the study's equal-steps arm (vanishes_at_equal_steps claims); optimizer: the study's
    (adam or sgd), for the protocol notes; critical_protocol: how the runs behind B_crit set their rate, and the
    batch sizes whose tuned rate is doubtful (batchlab.analysis.rates.rate_protocol); default: lr_rule, as given.
    equal_steps_spread: the spread measured on the arm's runs; a claim with `arm: equal_steps` is scored on the arm's
    runs and this spread (equal iterations) in place of the sweep's.
    """
    if critical_protocol is None:
        critical_protocol = RateProtocol(lr_rule)
    rows = []
    for claim in claims:
        if claim.metric == "critical_batch_size":
            continue
        if claim.arm == "equal_steps":
            if equal_steps is None or equal_steps.empty:
                raise ValueError(f"claim {claim.id!r}: no runs of the equal-steps arm")
            scored, scored_spread = equal_steps, equal_steps_spread
        else:
            scored, scored_spread = table, spread
        keep = trained_mask(scored, claim.metric, baseline)
        runs = scored[keep]
        if claim.expect == "vanishes_at_equal_steps":
            if equal_steps is None or equal_steps.empty:
                raise ValueError(f"claim {claim.id!r}: no runs of the equal-steps arm")
            result = equal_steps_test(runs, equal_steps, claim.metric, claim.tolerance_or_default(), alpha, n_perm,
                                      level, baseline)
        else:
            result = _test(claim, runs, scored_spread, n_boot, curves, steps, noise, level, alpha, n_perm, baseline, scored)
        if result["statistic"] in SEED_RESAMPLED:
            result = seed_interval_rule(result, result.pop("seed_values"))
        if result["statistic"] == "noise_scale_ratio" and not critical_protocol.tuned:
            result = {**result, "verdict": "inconclusive",
                      "note": "; ".join(filter(None, ["learning rate not tuned per batch size", result.get("note", "")]))}
        if result["statistic"] in ON_B_CRIT and critical_protocol.rate_limited:
            result = {**result, "verdict": "inconclusive",
                      "note": "; ".join(filter(None, ["B_crit " + critical_protocol.rate_limited, result.get("note", "")]))}
        result["left_out"] = left_out(scored, keep, claim.metric, baseline)
        critical = claim.expect == "predicts_critical_batch"
        result["protocol"] = protocol_note(claim, critical_protocol.rule if critical else lr_rule, optimizer,
                                           critical_protocol.doubtful if critical else (), arm_steps(claim, equal_steps))
        rows.append(scorecard_row(claim, result, level, n_boot))
    card = pd.DataFrame(rows, columns=SCORECARD_COLUMNS)
    card = adjust_for_multiplicity(card, alpha)
    card["rule"] = [STATISTICS[s][v] for s, v in zip(card["statistic"], card["verdict"])]
    return card


def _test(claim, runs, spread, n_boot, curves, steps, noise, level, alpha, n_perm, baseline, table) -> dict:
    """The result of the test the claim's kind calls for, on the runs that count for it."""
    if claim.expect in ("holds_until_critical_batch", "predicts_critical_batch") and (steps is None or steps.empty):
        raise ValueError(f"claim {claim.id!r}: no steps to target")
    if claim.expect == "predicted_by_samples_seen":
        if curves is None or curves.empty:
            raise ValueError(f"claim {claim.id!r}: no loss curves")
        in_regime, regime, why_not = below_b_crit(curves, steps)
        result = samples_predict_test(in_regime, claim.metric, claim.tolerance_or_default(), level)
        result["detail"] = f"{regime}; {result['detail']}"
        if why_not:
            result = {**result, "verdict": "inconclusive", "note": why_not}
        return result
    if claim.expect == "holds_until_critical_batch":
        if claim.metric not in table:
            raise ValueError(f"claim {claim.id!r}: metric {claim.metric!r} is not a column of the run table")
        return degradation_test(runs, claim.metric, b_crit_of_seeds(steps), claim.tolerance_or_default(), n_boot, level)
    if claim.expect == "predicts_critical_batch":
        if noise is None or noise.empty:
            raise ValueError(f"claim {claim.id!r}: no gradient statistics measured")
        return noise_scale_test(noise, steps, claim.tolerance_or_default(), n_boot, level)
    if claim.metric == "gradient_spread":
        own = own_spread(spread) if spread is not None else pd.DataFrame()
        if own.empty:
            raise ValueError(f"claim {claim.id!r}: no gradient spread measured at the runs' own batch sizes")
        trained = spread.merge(runs[["batch_size", "seed"]].drop_duplicates(), on=["batch_size", "seed"])
        if claim.expect == "flattens_with_batch_size":
            return spread_knee_test(trained, claim.tolerance_or_default(), alpha, level)
        return trend_test(own_spread(trained), "batch_size", "spread", claim.expect, claim.tolerance_or_default(),
                          alpha, n_perm, level)
    if claim.metric not in table:
        raise ValueError(f"claim {claim.id!r}: metric {claim.metric!r} is not a column of the run table")
    return trend_test(runs, "batch_size", claim.metric, claim.expect, claim.tolerance_or_default(), alpha, n_perm, level)
