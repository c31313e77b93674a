"""Which batch size to use: time and samples to the target from the measured steps S(B) and throughput X(B).

T(B) = S(B)·B / X(B) is the training time to the target on the device the runs ran on, E(B) = S(B)·B the samples.
The time-optimal batch size minimises T; the band holds every batch size whose time, over its seeds, comes within
TIME_SHARE of the fastest, so a choice among them is not settled by these runs. Each batch size gets a regime from
how much the next doubling cuts the steps (measured between neighbouring batch sizes, per doubling).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

THROUGHPUT_SOURCE = (
    "the runs' own samples per second over their whole training loop, the loss checks included: where a run takes "
    "few steps (large batch sizes) the checks weigh more and its time is overstated; no dedicated warm throughput "
    "measurement was given"
)
MEASURED_SOURCE = (
    "a dedicated measurement on this machine: the training step alone (no loss checks), {repeats} timed blocks of at "
    "least {block_s:g} s per batch size after {warm} untimed steps; the time's range spans the seeds' steps and the "
    "blocks' throughputs"
)
TIME_SHARE = 0.1  # within 10% of the fastest time: the band; within 10% of the fewest samples: sample-efficient
PERFECT_CUT = 1.8  # a doubling that cuts the steps by at least 1.8x (ideal 2x): perfect scaling
DIMINISHING_CUT = 1.1  # by 1.1x to 1.8x: diminishing returns; by less: maximal data parallelism


def per_batch_size(steps: pd.DataFrame, runs: pd.DataFrame, speed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per batch size: seed-mean steps to the target (runs that reached it), median throughput, T and E, with the
    range of T over the seeds whose runs reached the target: each seed's steps over its own run's throughput, or with
    a dedicated measurement `speed` (per batch size: samples_per_s and its low and high over repeats), the fewest
    steps at the highest throughput to the most at the lowest."""
    reached = steps[steps["reached"].astype(bool)][["batch_size", "seed", "steps"]]
    paired = reached.merge(runs[["batch_size", "seed", "samples_per_s"]], on=["batch_size", "seed"], how="left")
    paired["time_s"] = paired["steps"] * paired["batch_size"] / paired["samples_per_s"]
    rows = []
    measured = {} if speed is None else speed.set_index("batch_size").to_dict("index")
    for b, own in runs.groupby("batch_size"):
        hit = paired[paired["batch_size"] == b]
        mean_steps = float(hit["steps"].mean()) if len(hit) else math.nan
        if speed is None:
            throughput = float(own["samples_per_s"].median())
            low = float(hit["time_s"].min()) if len(hit) else math.nan
            high = float(hit["time_s"].max()) if len(hit) else math.nan
        else:
            x = measured.get(int(b), {"samples_per_s": math.nan, "samples_per_s_low": math.nan, "samples_per_s_high": math.nan})
            throughput = float(x["samples_per_s"])
            low = float(hit["steps"].min()) * b / x["samples_per_s_high"] if len(hit) else math.nan
            high = float(hit["steps"].max()) * b / x["samples_per_s_low"] if len(hit) else math.nan
        rows.append({
            "batch_size": int(b), "steps": mean_steps, "seeds_reached": int(len(hit)), "seeds": int(own["seed"].nunique()),
            "samples_per_s": throughput, "time_s": mean_steps * b / throughput, "samples": mean_steps * b,
            "time_s_low": low, "time_s_high": high,
            "lr": float(own["lr"].median()) if "lr" in own else math.nan,
        })
    table = pd.DataFrame(rows).sort_values("batch_size", ignore_index=True)
    table["steps_cut_per_doubling"] = cuts_per_doubling(table["batch_size"].to_numpy(float), table["steps"].to_numpy(float))
    table["regime"] = [regime(c) for c in table["steps_cut_per_doubling"]]
    return table


def cuts_per_doubling(sizes: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """How many times fewer steps each doubling of the batch size takes, from a batch size that reached the target to
    the next one that did, (S(b1)/S(b2))^(1/log2(b2/b1)); the largest that did takes the value of the one before it,
    and those that never reached it have none."""
    cut = np.full(len(sizes), np.nan)
    reached = [i for i in range(len(sizes)) if np.isfinite(steps[i]) and steps[i] > 0]
    for i, j in zip(reached, reached[1:]):
        cut[i] = (steps[i] / steps[j]) ** (1 / math.log2(sizes[j] / sizes[i]))
    if len(reached) > 1:
        cut[reached[-1]] = cut[reached[-2]]
    return cut


def regime(cut: float) -> str:
    """The regime a cut in steps per doubling names (thresholds PERFECT_CUT and DIMINISHING_CUT)."""
    if not math.isfinite(cut):
        return "not measured"
    if cut >= PERFECT_CUT:
        return "perfect scaling"
    return "diminishing returns" if cut >= DIMINISHING_CUT else "maximal data parallelism"


def recommend(steps: pd.DataFrame, runs: pd.DataFrame, device: str, rate_text: str,
              throughput: pd.DataFrame | None = None) -> dict:
    """The recommendation as a JSON-ready dict: the per-batch-size table, the time-optimal batch size and its band, the
    largest batch size within TIME_SHARE of the fewest samples, and a paragraph in words.

    steps: steps to the target per run (batch_size, seed, steps, reached); runs: the same runs' batch_size, seed,
    samples_per_s and lr; device: where they ran; rate_text: how the rate was set (tuned or not), said with the
    answer; throughput: a dedicated measurement (batchlab.training.throughput.measure), whose throughput replaces the
    runs' own and whose memory sets which batch sizes fit."""
    speed = None if throughput is None else summary(throughput)
    table = per_batch_size(steps, runs, speed)
    memory = None
    if throughput is not None:
        memory = memory_ceiling(throughput, float(throughput["available_mb"].iloc[0]), int(table["batch_size"].max()))
        ceiling = memory["largest_fitting"]
        table["fits_memory"] = [ceiling is None or b <= ceiling for b in table["batch_size"]]
    timed = table[np.isfinite(table["time_s"])]
    if timed.empty:
        return {"available": False, "reason": "no batch size reached the target", "table": _records(table)}
    best = timed.loc[timed["time_s"].idxmin()]
    ceiling = best["time_s"] * (1 + TIME_SHARE)
    band = timed[(timed["time_s_low"] <= ceiling) | (timed["time_s"] <= ceiling)]["batch_size"].astype(int).tolist()
    frugal = timed[timed["samples"] <= timed["samples"].min() * (1 + TIME_SHARE)]["batch_size"].max()
    scaling = rate_scaling(table) if _tuned(runs) else None
    return {
        "available": True,
        "device": device,
        "time_optimal_batch_size": int(best["batch_size"]),
        "time_optimal_lr": float(best["lr"]),
        "time_to_target_s": float(best["time_s"]),
        "time_to_target_range_s": [float(best["time_s_low"]), float(best["time_s_high"])],
        "band": band,
        "band_rule": f"batch sizes whose time to the target, at its mean or for some seed, lies within "
        f"{TIME_SHARE:.0%} of the fastest mean",
        "sample_efficient_batch_size": int(frugal),
        "sample_efficient_rule": f"the largest batch size whose samples to the target lie within {TIME_SHARE:.0%} of "
        "the fewest",
        "regime_rule": f"how many times fewer steps the next doubling takes: at least {PERFECT_CUT:g} perfect scaling, "
        f"{DIMINISHING_CUT:g} to {PERFECT_CUT:g} diminishing returns, less maximal data parallelism",
        "rate": rate_text,
        "throughput_source": THROUGHPUT_SOURCE if throughput is None else MEASURED_SOURCE.format(
            repeats=int(speed["repeats"].max()), block_s=float(throughput["block_s"].iloc[0]),
            warm=int(throughput["warm_steps"].iloc[0])),
        "memory": memory,
        "rate_scaling": scaling,
        "paragraph": paragraph(table, best, band, device, rate_text, memory, scaling),
        "table": _records(table),
    }


def _tuned(runs: pd.DataFrame) -> bool:
    return "lr_tuned" in runs and bool(runs["lr_tuned"].eq(True).any())


def rate_scaling(table: pd.DataFrame) -> dict | None:
    """The tuned rates' scaling rule, lr(B) = lr_0 (B / B_0)^k: k and lr_0 by least squares of log lr on log B over
    the batch sizes with a rate (B_0 their geometric mean), to read a rate between the grid's points."""
    rated = table[np.isfinite(table["lr"]) & (table["lr"] > 0)]
    if rated["batch_size"].nunique() < 2:
        return None
    x, y = np.log(rated["batch_size"].to_numpy(float)), np.log(rated["lr"].to_numpy(float))
    k, intercept = np.polyfit(x, y, 1)
    b0 = float(np.exp(x.mean()))
    return {"exponent": float(k), "base_batch_size": b0, "lr_at_base": float(np.exp(intercept + k * x.mean())),
            "rule": "lr(B) = lr_at_base (B / base_batch_size)^exponent, least squares of log lr on log B over the "
            "batch sizes' tuned rates"}


def paragraph(table: pd.DataFrame, best: pd.Series, band: list[int], device: str, rate_text: str,
              memory: dict | None = None, scaling: dict | None = None) -> str:
    """The answer in plain words, with the next larger batch size's trade: faster per sample, more samples."""
    b = int(best["batch_size"])
    seeds = int(best["seeds_reached"])
    low, high = _duration(best["time_s_low"]), _duration(best["time_s_high"])
    spread = ("one seed" if seeds < 2 else f"{low} for each of {seeds} seeds" if low == high
              else f"{low} to {high} over {seeds} seeds")
    text = (f"On this {device}, batch size {b} at learning rate {best['lr']:.3g} reaches the target fastest: "
            f"{_duration(best['time_s'])} of training ({spread}; {best['regime']}).")
    larger = table[(table["batch_size"] > b) & np.isfinite(table["samples"])]
    if len(larger):
        nxt = larger.iloc[0]
        text += (f" Batch size {int(nxt['batch_size'])} runs {nxt['samples_per_s'] / best['samples_per_s']:.2g}x as many "
                 f"samples per second but needs {nxt['samples'] / best['samples']:.2g}x the samples.")
    if len(band) > 1:
        text += f" Batch sizes {', '.join(map(str, band))} are within {TIME_SHARE:.0%} of the fastest: these runs do not tell them apart."
    if memory is not None and memory["largest_fitting"] is not None and not memory["all_fit"]:
        text += (f" Memory holds batches up to {memory['largest_fitting']:,}"
                 f"{' (an estimate)' if memory['kind'] == 'estimate' else ''}: larger ones need micro-batches.")
    if scaling is not None:
        text += (f" Between the tuned batch sizes the rate scales about as B^{scaling['exponent']:.2f} (fitted to the "
                 "tuned rates).")
    return text + f" The {rate_text}."


def _duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 120 else f"{seconds / 60:.3g} min"


def _records(table: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            for row in table.to_dict("records")]


def memory_ceiling(table: pd.DataFrame, available_mb: float, largest: int) -> dict:
    """The largest batch the memory holds, from the measurements: on a GPU the largest batch size that fit (and the
    micro-batch beyond it); on a CPU an estimate, fixed + per-sample x B <= available, per-sample from a least-squares
    line through the saved-activation bytes over the batch sizes."""
    one = table.drop_duplicates("batch_size").sort_values("batch_size")
    if (one["device"] != "cpu").any():
        fit = one[one["fits"].astype(bool)]
        biggest = int(fit["batch_size"].max()) if len(fit) else 0
        return {"kind": "measured", "largest_fitting": biggest, "all_fit": bool(one["fits"].all()),
                "micro_batch_needed": None if one["fits"].all() else biggest,
                "rule": "the largest of the study's batch sizes whose training step ran without running out of memory"}
    b = one["batch_size"].to_numpy(float)
    act = one["activation_mb"].to_numpy(float)
    per_sample, intercept = np.polyfit(b, act, 1) if len(b) > 1 else (act[0] / b[0], 0.0)
    per_sample, fixed = float(per_sample), float(one["fixed_mb"].iloc[0] + intercept)
    fits = per_sample > 0 and math.isfinite(available_mb)
    ceiling = math.floor((available_mb - fixed) / per_sample * (1 + 1e-12)) if fits else None  # the fit's rounding
    return {"kind": "estimate", "per_sample_mb": per_sample, "fixed_mb": fixed, "available_mb": available_mb,
            "largest_fitting": ceiling, "all_fit": ceiling is None or ceiling >= largest,
            "micro_batch_needed": None if ceiling is None or ceiling >= largest else ceiling,
            "rule": "an estimate on a CPU (running out of memory there kills the process): the tensors the forward keeps "
            "for the backward, per sample from a line over the batch sizes, plus the parameters, gradients and "
            "optimizer state, against the memory available when measured; the framework's own memory is not counted"}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per batch size: the median samples per second over the repeats and their range."""
    timed = table[table["fits"].astype(bool)]
    return timed.groupby("batch_size")["samples_per_s"].agg(["median", "min", "max", "count"]).rename(
        columns={"median": "samples_per_s", "min": "samples_per_s_low", "max": "samples_per_s_high",
                 "count": "repeats"}).reset_index()


def pilot(table: pd.DataFrame) -> dict:
    """The advise pilot's answer (batchlab.training.pilot's halving table) as a JSON-ready dict: the candidate the
    halving kept last, its estimated time to the target, and every (candidate, rung) row. One seed: no interval."""
    last = table[table["rung"] == table["rung"].max()]
    won = last[last["kept"].astype(bool)].iloc[0]
    reached = bool(won["reached"])
    wall = bool(table["stopped_by_wall_cap"].iloc[0])
    text = (f"Pilot (one seed, no interval; successive halving over {table[table['rung'] == 0].shape[0]} candidates in "
            f"{(rungs := int(table['rung'].max()) + 1)} rung{'s' if rungs > 1 else ''}, eta {int(table['eta'].iloc[0])}, within {table['cap_minutes'].iloc[0]:g} "
            f"min): batch size {int(won['batch_size'])} at learning rate {won['lr']:.3g} "
            + (f"reached the target first, in an estimated {_duration(won['time_to_target_s'])} of training."
               if reached else f"was ahead but did not reach the target (validation loss {won['val_loss']:.4g} against "
               f"{won['target']:.4g}): give the pilot more minutes.")
            + (" The wall cap stopped the pilot before its schedule ended: the last rung compares unequal budgets."
               if wall else ""))
    return {
        "batch_size": int(won["batch_size"]), "lr": float(won["lr"]), "reached": reached,
        "time_to_target_s": float(won["time_to_target_s"]) if reached else None,
        "stopped_by_wall_cap": wall, "wall_time_s": float(table["wall_time_s"].iloc[0]),
        "label": "pilot: one seed, no interval", "paragraph": text,
        "table": _records(table.sort_values(["rung", "rank"], ignore_index=True)),
    }
