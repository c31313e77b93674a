"""Resampling seeds, and batch sizes crossed with them: the bootstraps behind the scorecard's intervals.

Seeds are the replicates. Runs of one seed share their initial weights and data order at every batch
size (and in every cell of a scaling grid), so a draw resamples whole seeds and keeps them paired.
k seeds allow only C(2k - 1, k) distinct resamples (3 for 2 seeds: {a, a}, {a, b}, {b, b}, drawn a quarter,
half and quarter of the time), so intervals from few seeds are coarse; describe_interval says so in words.

A batch size also has an effect that all its seeds share (a data order, a learning rate that suits it), which
no draw of seeds shows. Statistics over batch sizes therefore draw batch sizes too, independently of the
seeds (Owen's pigeonhole bootstrap for crossed random effects, pigeonhole_draws and crossed_mean), and a
fit over a fixed design of batch sizes flips each batch size's residual with a random sign (a wild bootstrap,
wild_log_steps).
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def seed_bootstrap(statistic, n_units: int, n_boot: int) -> tuple[object, list]:
    """The statistic on all units, and on n_boot resamples of them with replacement (none below 2 units).

    statistic(columns) gets an index array into the units (seeds, paired across batch sizes); the draws
    come from default_rng(0), so every test is reproducible. Means of all-NaN columns (every resampled
    run of a batch size diverged) give NaN without a warning.
    """
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = statistic(np.arange(n_units)) if n_units else None
        draws = resample(statistic, n_units, n_boot, rng) if n_units >= 2 else []
    return point, draws


def resample(statistic, n_units: int, n_boot: int, rng: np.random.Generator) -> list:
    """statistic(columns) on n_boot draws of n_units indices with replacement from rng, in the order drawn.

    Few units allow few distinct draws (27 for 3 seeds), so each distinct draw is computed once and its
    value repeated. Distinct means the same indices in the same order: a mean over resampled seeds
    sums in the order drawn, and its last bit can depend on it. The statistic must be a function of
    its argument alone, and its values are shared between the draws that repeat, not copied.
    """
    seen: dict[bytes, object] = {}
    draws = []
    for _ in range(n_boot):
        columns = rng.integers(0, n_units, n_units)
        key = columns.tobytes()
        if key not in seen:
            seen[key] = statistic(columns)
        draws.append(seen[key])
    return draws


def seed_draws(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_units] indices drawn with replacement: each row one resample of the units."""
    return rng.integers(0, n_units, (n_boot, n_units))


def counts(draws: np.ndarray, n_units: int) -> np.ndarray:
    """[n_boot, n_units]: how many times each unit is in each row of draws."""
    draws = np.asarray(draws)
    out = np.zeros((len(draws), n_units))
    np.add.at(out, (np.repeat(np.arange(len(draws)), draws.shape[1]), draws.ravel()), 1)
    return out


def pigeonhole_draws(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row of group labels (non-decreasing along the row: the groups are runs of adjacent items, such as
    batch sizes below and above B_crit), an index per item drawn with replacement from the items of its own group.

    Each group keeps its size in every draw; a draw of the rows crossed with an independent draw of the seeds
    is Owen's pigeonhole bootstrap, stratified by group. groups: [n_boot, n_items] (labels may differ per row).
    """
    groups = np.atleast_2d(np.asarray(groups))
    n_boot, n = groups.shape
    index = np.broadcast_to(np.arange(n), groups.shape)
    new = np.ones(groups.shape, dtype=bool)
    new[:, 1:] = groups[:, 1:] != groups[:, :-1]
    if (groups[:, 1:] < groups[:, :-1]).any():
        raise ValueError("group labels must be non-decreasing along each row")
    start = np.maximum.accumulate(np.where(new, index, 0), axis=1)
    last = np.ones(groups.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, index, n - 1)[:, ::-1], axis=1)[:, ::-1]
    return start + np.floor(rng.random(groups.shape) * (end - start + 1)).astype(int)


def crossed_mean(values: np.ndarray, row_counts: np.ndarray, col_counts: np.ndarray) -> np.ndarray:
    """Per draw, the mean of a [rows, columns] table over its finite cells, each cell counted as often as its row
    and its column were drawn (row_counts [n_boot, rows] times col_counts [n_boot, columns]); NaN without one."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    total = np.einsum("dr,rc,dc->d", row_counts, finite.astype(float), col_counts)
    weighted = np.einsum("dr,rc,dc->d", row_counts, np.where(finite, values, 0.0), col_counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / total, np.nan)


def small_sample_spread(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """values with each unit's mean (over the other axis) moved away from the units' mean by k/(k - 1), k the units
    with a value: each deviation divided by 1 minus its leverage 1/k (HC3), so that a bootstrap over k units errs
    on the wide side of their mean's variance (k/(k - 1) of it) instead of seeing (k - 1)/k of it."""
    values = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        unit_means = np.nanmean(values, axis=1 - axis, keepdims=True)
        k = int(np.isfinite(unit_means).sum())
        centre = np.nanmean(unit_means)
    if k < 2:
        return values
    return values + (k / (k - 1) - 1) * (unit_means - centre)


def rademacher(n_boot: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n] random signs, +1 or -1 with equal chance: the multipliers of a wild bootstrap."""
    return np.where(rng.random((n_boot, n)) < 0.5, -1.0, 1.0)


def leverage(jacobian: np.ndarray) -> np.ndarray:
    """Each point's leverage h, the diagonal of J (J^T J)^-1 J^T, for a least-squares fit with Jacobian J [points,
    parameters] (rows of NaN: points left out, leverage NaN)."""
    jacobian = np.asarray(jacobian, dtype=float)
    ok = np.isfinite(jacobian).all(axis=1)
    out = np.full(len(jacobian), np.nan)
    j = jacobian[ok]
    out[ok] = np.einsum("ij,jk,ik->i", j, np.linalg.pinv(j.T @ j), j)
    return out


def wild_log_steps(log_drawn: np.ndarray, residuals: np.ndarray, signs: np.ndarray, leverages: np.ndarray) -> np.ndarray:
    """A wild residual bootstrap crossed with a seed draw: each draw's log steps (log_drawn, [n_boot, n], the drawn
    seeds' means) with every point's residual of the fit to all seeds (residuals, [n]) replaced by itself divided by
    1 minus its leverage (HC3: a fitted point's residual understates its error, most where it pulls the fit) times a
    random sign.

    A batch size's effect on the steps, shared by its seeds, sits in its residual: flipped, it moves the refitted
    curve in the draws as it moved the fit to the data; the seed draw adds the seeds' own spread on top.
    """
    residuals = np.nan_to_num(np.asarray(residuals, dtype=float))
    scale = 1 / (1 - np.clip(np.nan_to_num(np.asarray(leverages, dtype=float)), 0, 0.95))
    return np.asarray(log_drawn, dtype=float) + (scale * signs - 1) * residuals


def tail(level: float) -> float:
    """The share of the draws a percentile interval at `level` leaves out on each side: (1 - level) / 2."""
    return (1 - level) / 2


def enough_draws(share: float, level: float) -> bool:
    """Whether a share of draws with a value leaves room for an interval at `level` (at most a tail without one)."""
    return 1 - share <= tail(level) + 1e-12


def no_interval_note(estimate: float, low: float, high: float, flagged: float, level: float, what: str = "B_crit") -> str:
    """The scorecard's short note for an estimate without an interval because `what` is flagged in too many draws."""
    if estimate is None or not math.isfinite(estimate) or (math.isfinite(low) and math.isfinite(high)) or not flagged:
        return ""
    return f"no {_pct(level)} interval: {what} flagged in {_pct(flagged)} of the resamples"


def distinct_resamples(n_units: int) -> int:
    """How many different resamples n_units units drawn with replacement can give: C(2n - 1, n), 3 for 2 seeds."""
    return math.comb(2 * n_units - 1, n_units) if n_units > 0 else 0


def _split(draws, unknown) -> tuple[np.ndarray, int, int]:
    """The finite draws, how many draws have an unknown value, and how many an undefined one (left out)."""
    values = np.asarray(draws, dtype=float).ravel()
    finite = np.isfinite(values)
    unknown = ~finite if unknown is None else np.asarray(unknown, dtype=bool).ravel() & ~finite
    return values[finite], int(unknown.sum()), int((~finite).sum() - unknown.sum())


def percentile_interval(draws, level: float, unknown=None) -> tuple[float, float]:
    """The (1 - level)/2 and (1 + level)/2 quantiles of the draws, wherever the draws of unknown value would lie.

    A draw without a finite value whose statistic exists but is not known (B_crit flagged in it: outside
    the batch sizes, where the fit only extrapolates) still was a draw: leaving it out would truncate the
    distribution on the side where it lay, and with few seeds the interval then ended at the estimate.
    With a share m of such draws, the ends are the quantiles (a - m)/(1 - m) and 1 - (a - m)/(1 - m) of
    the others, a = (1 - level)/2: they hold even if all the unknown draws lay on one side. With m above a
    no end holds and the interval is (NaN, NaN), as it is without any finite draw.

    unknown: a mask of the draws whose missing value is unknown rather than undefined (a resample with no
    measured seed has no B_simple at all); non-finite draws outside it are left out. None: all of them.
    """
    finite, n_unknown, _ = _split(draws, unknown)
    if not len(finite):
        return math.nan, math.nan
    alpha = tail(level)
    missing = n_unknown / (len(finite) + n_unknown)
    if not enough_draws(1 - missing, level):
        return math.nan, math.nan
    inner = (alpha - missing) / (1 - missing)
    low, high = np.quantile(finite, [inner, 1 - inner])
    return float(low), float(high)


def _pct(share: float) -> str:
    """A share as a percentage with up to 3 significant figures: 25%, 3.7%, 2.5%."""
    return f"{100 * share:.3g}%"


def _same(a, b) -> bool:
    """Equal up to rounding (the statistic of a resample and of its permutations may differ in the last bits)."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return False
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _distinct(values: np.ndarray) -> int:
    """Distinct values, counting as one those equal up to rounding (resamples that are permutations of each other)."""
    values = np.sort(values)
    if not len(values):
        return 0
    gaps = np.diff(values) > 1e-9 * np.maximum(1.0, np.abs(values[1:]))
    return int(gaps.sum()) + 1


def describe_interval(
    draws, estimate: float, low: float, high: float, n_units: int, level: float, unit: str = "seed", unknown=None
) -> str:
    """What a reader needs to weigh a percentile interval from few units, as a clause of a scorecard detail.

    How many distinct resamples the units allow, how many draws have no value and what that did to the
    interval, how many distinct values the draws took, whether a resample of one unit alone is more than a
    tail of the draws (then an end can be that unit's own value), and whether an end is the estimate itself.
    unknown as in percentile_interval. '' with fewer than 2 units (no draws).
    """
    values = np.asarray(draws, dtype=float).ravel()
    if n_units < 2 or not len(values):
        return ""
    finite, n_unknown, n_undefined = _split(values, unknown)
    alpha = tail(level)
    parts = [f"{n_units} {unit}s give {distinct_resamples(n_units)} distinct resamples"]
    if n_undefined:
        parts.append(f"{n_undefined} of the {len(values)} draws, in which the statistic is not defined, are left out")
    if n_unknown:
        parts.append(f"{n_unknown} of the {len(finite) + n_unknown} draws have no value")
        if len(finite) and not (math.isfinite(low) and math.isfinite(high)):
            parts.append(f"no {_pct(level)} interval: they are more than the {_pct(alpha)} of the draws in one tail and "
                         "could lie on either side")
        elif len(finite):
            parts.append("the interval is widened to hold wherever they would lie")
    if len(finite):
        n_values = _distinct(finite)
        among = "the others" if n_unknown else f"the {len(finite)} draws"
        parts.append(f"{n_values} distinct value{'s' if n_values != 1 else ''} among {among}")
    single = float(n_units) ** -n_units
    if single > alpha:
        parts.append(f"a resample of one {unit} alone is {_pct(single)} of the draws, more than the {_pct(alpha)} in a "
                     f"tail, so an end of the interval can be one {unit}'s own value")
    at_estimate = [name for name, end in (("lower", low), ("upper", high)) if _same(end, estimate)]
    if at_estimate:
        share = float(np.mean([_same(v, estimate) for v in finite]))
        which = "both ends are" if len(at_estimate) == 2 else f"the {at_estimate[0]} end is"
        parts.append(f"{which} the estimate itself ({_pct(share)} of the draws with a value equal it)")
    return "; ".join(parts)
