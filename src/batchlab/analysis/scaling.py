"""The critical batch size across a data-size x model-size grid (Zhang et al. 2025).

Each cell of the grid is a whole batch-size study; its B_crit comes from the S(B) = S_min(1 + B_crit/B)
fit to the seed-mean steps to target (batchlab.analysis.cbs). Across cells, log B_crit is regressed on log
training-set size and log width together, so each slope is the effect of one with the other held
fixed. Seeds are the replicates: one bootstrap draw resamples seeds once for every cell (a seed's runs share their
initialisation rule and data order in every cell), crossed with each cell's own wild bootstrap of its S(B) fit
(batchlab.analysis.b_crit_claims.SeedFit: each batch size's log residual, widened by its leverage, given a random
sign), so that an effect a batch size shares across its seeds moves the cell's B_crit in the draws as in the data;
this gives intervals for each cell's B_crit and for both slopes. B_20 = B_crit / 5 has the same slopes.
A cell whose B_crit the rule of batchlab.analysis.measured flags (outside the batch sizes that reached the
target, too few of them, or a poor fit) keeps its fit and flag in the table, and the grid's claims are
then inconclusive with the cell's reason. A bootstrap draw in which the rule flags some cell gives no
slope: it was drawn all the same, and its slope could lie on either side, so the intervals hold wherever
such draws lie, and when they are more than (1 - level)/2 of the draws no interval holds and the claims
are inconclusive too (batchlab.analysis.resampling.percentile_interval). With 2 seeds a draw is one of only 3
distinct resamples of the seeds; the claims' details say so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from batchlab.analysis.b_crit_claims import SeedFit
from batchlab.analysis.cbs import seed_mean_steps
from batchlab.analysis.claims import scorecard_row, seed_interval_rule
from batchlab.analysis.significance import interval_verdict
from batchlab.analysis.rates import RULE_WORDS
from batchlab.analysis.resampling import (
    describe_interval, enough_draws, no_interval_note, percentile_interval, seed_draws,
)

CELL_COLUMNS = ["study", "train_samples", "width_factor", "n_params"]


def log_slopes(train_samples, widths, b_crit) -> tuple[float, float]:
    """Least-squares slopes of log B_crit on log training-set size and on log width (NaN where not estimable).

    A regressor with a single value in the grid is left out (its slope is NaN); cells whose B_crit is not
    finite are dropped; the fit needs more cells than coefficients.
    """
    n, w, b = (np.asarray(v, dtype=float) for v in (train_samples, widths, b_crit))
    ok = np.isfinite(b) & (b > 0)
    columns, names = [np.ones(ok.sum())], []
    for name, values in (("data", n[ok]), ("width", w[ok])):
        if len(np.unique(values)) > 1:
            columns.append(np.log(values))
            names.append(name)
    design = np.column_stack(columns)
    if ok.sum() <= design.shape[1] or not names:
        return math.nan, math.nan
    coef, *_ = np.linalg.lstsq(design, np.log(b[ok]), rcond=None)
    slopes = dict(zip(names, coef[1:]))
    return float(slopes.get("data", math.nan)), float(slopes.get("width", math.nan))


def analyse_grid(
    cells: pd.DataFrame, steps: list[pd.DataFrame], n_boot: int = 1000, level: float = 0.95, rng=None
) -> tuple[pd.DataFrame, dict]:
    """Per-cell B_crit with bootstrap intervals and flags, and the two slopes' estimates and bootstrap draws.

    cells: one row per cell (CELL_COLUMNS); steps: each cell's per-run steps-to-target table, same order.
    The table keeps every cell's fitted B_crit with its flag ('' = measured); the slopes use measured cells only.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0)
    fits = [SeedFit(table) for table in steps]
    seeds = fits[0].seeds
    for fit, name in zip(fits, cells["study"]):
        if list(fit.seeds) != list(seeds):
            raise ValueError(f"cell {name!r} has seeds {list(fit.seeds)}, the grid's first cell {list(seeds)}")
    matrices = [(fit.sizes, fit.seeds, fit.grid) for fit in fits]
    fitted = [fit(seeds) for fit in fits]
    raw = np.array([b for b, _ in fitted])
    flags = [reason for _, reason in fitted]
    estimate = np.where([not f for f in flags], raw, np.nan)
    # one seed draw for every cell (a seed's runs share their initialisation and data order across the grid), crossed
    # with each cell's own wild bootstrap of its S(B) fit: a batch size's effect on a cell's steps moves its B_crit
    labels = seeds[seed_draws(len(seeds), n_boot, rng)]
    both = [fit.fitted_draws(labels, rng) for fit in fits]
    raw_draws = np.column_stack([b for b, _ in both]).reshape(n_boot, len(cells))
    draws = np.column_stack([m for _, m in both]).reshape(n_boot, len(cells))
    n, w = cells["train_samples"].to_numpy(), cells["width_factor"].to_numpy()
    # a draw in which some cell is not measured is no replicate of the grid's analysis: its slopes are NaN
    slope_draws = np.array([log_slopes(n, w, d) if np.isfinite(d).all() else (math.nan, math.nan) for d in draws])
    slope_draws = slope_draws.reshape(n_boot, 2)
    flagged = ~np.isfinite(draws).all(axis=1)  # the draws whose slopes exist but are not known
    table = cells.assign(
        b_crit=raw,
        flag=flags,
        b_crit_low=[percentile_interval(raw_draws[:, i], level)[0] for i in range(len(cells))],
        b_crit_high=[percentile_interval(raw_draws[:, i], level)[1] for i in range(len(cells))],
        b_20=raw / 5,
        n_boot_ok=np.isfinite(raw_draws).sum(axis=0),
        n_boot_measured=np.isfinite(draws).sum(axis=0),
        batch_sizes_reached=[len(_reached(sizes, g, len(seeds))) for sizes, _, g in matrices],
        reached_min=[_reached(sizes, g, len(seeds)).min(initial=np.inf) for sizes, _, g in matrices],
        reached_max=[_reached(sizes, g, len(seeds)).max(initial=-np.inf) for sizes, _, g in matrices],
    )
    slope_data, slope_width = log_slopes(n, w, estimate)
    slopes = {
        "data": {"estimate": slope_data, "draws": slope_draws[:, 0], "unknown": flagged},
        "width": {"estimate": slope_width, "draws": slope_draws[:, 1], "unknown": flagged},
        "n_seeds": len(seeds),
    }
    return table, slopes


def _reached(sizes: np.ndarray, grid: np.ndarray, n_seeds: int) -> np.ndarray:
    """The batch sizes at which some seed reached the target."""
    return sizes[np.isfinite(seed_mean_steps(grid, np.arange(n_seeds)))]


def grid_protocol(study) -> str:
    """Where a grid departs from Zhang et al.'s protocol ('' where it does not): one absolute target shared by every
    cell, the learning rate tuned per batch size, and the weights averaged (steps read from their moving average)."""
    t = study.to_target
    notes = []
    kind = study.steps_to_target.kind if t is None else t.kind
    shared = kind in (("value", "baseline_ratio") if t is not None else ("value",))
    if not shared:
        field = "steps_to_target" if t is None else "to_target"
        notes.append(f"each cell's target is relative to that cell ({field}.kind {kind}), while Zhang et al. share "
                     "one absolute loss across cells, so here the slope on data also measures how deep each cell's target "
                     "lies (to_target: {kind: value} or {kind: baseline_ratio} shares one)")
    tuned = t.lr_tuning is not None if t is not None else study.optim.lr_rule == "tuned"
    if not tuned:
        notes.append(f"learning rate {RULE_WORDS.get(study.optim.lr_rule, study.optim.lr_rule)}, not tuned per batch "
                     "size by steps to the target "
                     "(to_target.lr_tuning) as Zhang et al. tuned it")
    if t is None or t.weight_averaging is None:
        notes.append("steps read from the weights as trained, not from an exponential moving average of the weights "
                     "as Zhang et al. read them (to_target.weight_averaging)")
    return "; ".join(notes)


def evaluate_scaling_claims(claims, table: pd.DataFrame, slopes: dict, level: float = 0.95, protocol: str = "") -> pd.DataFrame:
    """Scorecard rows for the grid's claims: B_crit grows with data, and hardly changes with model width; protocol:
    where the grid departs from the paper's (grid_protocol), noted on every row."""
    rows = []
    fitted = table[table["flag"] == ""]
    for claim in claims:
        if claim.expect not in ("increases_with_data_size", "flat_with_model_size"):
            continue
        key = "data" if claim.expect == "increases_with_data_size" else "width"
        draws = np.asarray(slopes[key]["draws"], dtype=float)
        unknown = slopes[key].get("unknown")
        low, high = percentile_interval(draws, level, unknown)
        unmeasured = [f"{c.study}: {c.flag}" for c in table[table["flag"] != ""].itertuples()]
        share = float(np.isfinite(draws).mean()) if len(draws) else 0.0
        band = None if key == "data" else (-claim.tolerance_or_default(), claim.tolerance_or_default())
        axis = "train_samples" if key == "data" else "width_factor"
        ends = fitted.groupby(axis)["b_crit"].mean().sort_index()
        described = describe_interval(draws, slopes[key]["estimate"], low, high, slopes["n_seeds"], level, unknown=unknown)
        result = {
            "statistic": "log_slope_data" if key == "data" else "log_slope_width",
            "estimate": slopes[key]["estimate"],
            "low": low,
            "high": high,
            "n_x": int(table[axis].nunique()),
            "n_units": int(slopes["n_seeds"]),
            "n_excluded_runs": int(len(table) - len(fitted)),
            "at_smallest": float(ends.iloc[0]) if len(ends) else math.nan,
            "at_largest": float(ends.iloc[-1]) if len(ends) else math.nan,
            "detail": f"B_crit (mean over cells) at the smallest and largest {axis.replace('_', ' ')}; "
            f"{len(fitted)} of {len(table)} cells measured"
            + (f"; tolerance ±{claim.tolerance_or_default():g}" if band else "")
            + f"; all cells measured in {share:.0%} of the resamples"
            + "".join(f"; {u}" for u in unmeasured)
            + "".join(
                f"; {c.study}: B_crit measured in {c.n_boot_measured / len(draws):.0%} of the resamples"
                for c in table.itertuples()
                if not c.flag and len(draws) and not enough_draws(c.n_boot_measured / len(draws), level)
            )
            + (f"; {described}" if described else ""),
            "note": f"B_crit not measured in {len(unmeasured)} cells" if unmeasured
            else no_interval_note(slopes[key]["estimate"], low, high, 1 - share, level, "some cell's B_crit"),
            "verdict": interval_verdict(low, high, band)
            if slopes["n_seeds"] >= 2 and not unmeasured and enough_draws(share, level)
            else "inconclusive",
            "protocol": protocol,
        }
        rows.append(scorecard_row(claim, seed_interval_rule(result, []), level, len(slopes[key]["draws"])))
    return pd.DataFrame(rows)
