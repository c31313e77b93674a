"""Successive halving on an equal wall-time budget: the pure logic of the `advise` pilot (no torch, no pandas).

Every candidate (batch size B, learning rate) gets the same wall time, turned into steps through the measured
throughput X(B): steps = floor(t·X(B)/B). Rung r gives each surviving candidate T_r = t_0·eta^r seconds of training in
all (cumulative: a survivor goes on from where it stopped), then ranks them: those that reached the target first,
by their time to it (crossing step·B/X(B)), then the rest by validation loss at the rung's end, diverged ones last;
the best ceil(n/eta) go on. It stops when one is left. t_0 is chosen so that the whole schedule,
sum_r n_r (T_r - T_{r-1}), is the training budget. batchlab.training.pilot trains the candidates; tests pass an
analytic `advance` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Candidate:
    """One (batch size, rate) of the pilot: the base rate (the grid's key) and the peak rate it trains at."""

    batch_size: int
    base_lr: float
    lr: float


@dataclass(frozen=True)
class Progress:
    """Where a candidate stands after training to a rung's steps (cumulative)."""

    steps: int
    val_loss: float
    reached: bool = False
    crossing: float = math.nan  # steps to the target, interpolated as the to-target analysis places it
    diverged: bool = False
    capped: bool = False  # stopped at to_target's cap, short of the target
    wall_stopped: bool = False  # stopped by the pilot's cap in minutes before its rung's steps


TRAIN_SHARE = 0.75  # of the cap left after measuring X(B): the halving's training; the rest for evaluations
SPEED_REPEATS, SPEED_BLOCK_S = 2, 0.1  # the pilot's throughput measurement: repeats and block length (the cap is short)

Advance = Callable[[Candidate, int], Progress]  # train a candidate to (at most) this many steps in all


def rung_sizes(n: int, eta: int) -> list[int]:
    """Candidates trained at each rung: n, ceil(n/eta), ... while more than one is left."""
    if n < 1 or eta < 2:
        raise ValueError(f"successive halving needs candidates and eta >= 2, got n={n}, eta={eta}")
    sizes = [n]
    while sizes[-1] > 1 and math.ceil(sizes[-1] / eta) > 1:
        sizes.append(math.ceil(sizes[-1] / eta))
    return sizes


def schedule(n: int, eta: int, budget_s: float) -> list[tuple[int, float]]:
    """Per rung: candidates and the cumulative seconds T_r = t_0·eta^r each has trained by its end, with t_0 such
    that sum_r n_r (T_r - T_{r-1}) = budget_s."""
    sizes = rung_sizes(n, eta)
    weight = sum(k * (eta**r - (eta ** (r - 1) if r else 0)) for r, k in enumerate(sizes))
    t0 = budget_s / weight
    return [(k, t0 * eta**r) for r, k in enumerate(sizes)]


def steps_for(seconds: float, samples_per_s: float, batch_size: int) -> int:
    """The steps `seconds` of training buy at this throughput (at least one)."""
    return max(1, math.floor(seconds * samples_per_s / batch_size))


def rank_key(row: dict) -> tuple:
    """Reached the target first, by time to it; then by validation loss at the rung's end; diverged or NaN last;
    ties by batch size and rate."""
    if row["reached"] and math.isfinite(row["time_to_target_s"]):
        head = (0, row["time_to_target_s"])
    elif not row["diverged"] and math.isfinite(row["val_loss"]):
        head = (1, row["val_loss"])
    else:
        head = (2, 0.0)
    return (*head, row["batch_size"], row["base_lr"])


def successive_halving(candidates: list[Candidate], speed: dict[int, float], eta: int, budget_s: float,
                       advance: Advance) -> list[dict]:
    """Run the halving; one row per candidate and rung it trained in (kept: it goes on, or it won). A rung in which
    some candidate was stopped by the wall cap is the last: its ranking is of what each had trained by then."""
    rows: list[dict] = []
    alive = list(candidates)  # a rung where every candidate reached the target, diverged or hit its cap is the last:
    # more time changes nothing
    plan = schedule(len(candidates), eta, budget_s)
    for r, (_, seconds) in enumerate(plan):
        these = []
        for c in alive:
            x = speed[c.batch_size]
            p = advance(c, steps_for(seconds, x, c.batch_size))
            these.append({
                "rung": r, "batch_size": c.batch_size, "base_lr": c.base_lr, "lr": c.lr, "budget_s": seconds,
                "steps": p.steps, "samples": p.steps * c.batch_size, "samples_per_s": x,
                "estimated_time_s": p.steps * c.batch_size / x, "val_loss": p.val_loss, "reached": p.reached,
                "crossing_steps": p.crossing, "time_to_target_s": p.crossing * c.batch_size / x if p.reached else math.nan,
                "diverged": p.diverged, "capped": p.capped, "wall_stopped": p.wall_stopped,
            })
        these.sort(key=rank_key)
        stopped = any(t["wall_stopped"] for t in these)
        settled = all(t["reached"] or t["diverged"] or t["capped"] for t in these)
        keep = 1 if stopped or settled else math.ceil(len(these) / eta)
        for i, t in enumerate(these):
            t["rank"], t["kept"] = i + 1, i < keep
        rows += these
        by_key = {(c.batch_size, c.base_lr): c for c in alive}
        alive = [by_key[(t["batch_size"], t["base_lr"])] for t in these[:keep]]
        if stopped or settled:
            break
    return rows


def winner(rows: list[dict]) -> dict | None:
    """The row of the candidate the halving kept last (None without rows)."""
    if not rows:
        return None
    last = max(r["rung"] for r in rows)
    return next(r for r in rows if r["rung"] == last and r["kept"])


def estimate(sizes: list[int], n_rates: int, eta: int, minutes: float, step_s: Callable[[int], float], eval_s: float,
             cap_steps: Callable[[int], int], checks: int) -> dict:
    """The pilot's cost before it runs, from seconds per training step at each batch size and per evaluation pass
    (batchlab.training.cost's rates): the throughput measurement, then the schedule on the estimated X(B) = B/step_s,
    its steps floored at one, and its evaluations (about checks·ln(s)/ln(cap) + 1 log-spaced checks by step s, plus
    one at each rung's end), each rung's candidates costed at the mean over the batch sizes. An upper bound where
    candidates reach the target early: they stop training there."""
    measure = sum(3 * step_s(b) + SPEED_REPEATS * max(SPEED_BLOCK_S, step_s(b)) for b in sizes)
    plan = schedule(len(sizes) * n_rates, eta, max(minutes * 60 - measure, 0.0) * TRAIN_SHARE)

    def cost(b: int, seconds: float, rung: int) -> float:
        steps = steps_for(seconds, b / step_s(b), b)
        cap = max(cap_steps(b), 2)
        evals = checks * math.log(min(steps, cap)) / math.log(cap) + 1 + rung + 1
        return min(steps, cap) * step_s(b) + evals * eval_s

    total, before = measure, {b: 0.0 for b in sizes}
    for r, (k, seconds) in enumerate(plan):
        now = {b: cost(b, seconds, r) for b in sizes}
        total += k * sum(now[b] - before[b] for b in sizes) / len(sizes)
        before = now
    return {"candidates": len(sizes) * n_rates, "rungs": [k for k, _ in plan], "seconds": [t for _, t in plan],
            "measure_s": measure, "total_s": total,
            "first_rung_steps": {b: min(steps_for(plan[0][1], b / step_s(b), b), cap_steps(b)) for b in sizes}}
