"""Error rates and power of the scorecard's bootstrap verdicts on B_crit at 5 and 10 seeds, by simulation.

Two claim kinds whose verdict rests on a percentile bootstrap (verdict_rules.SEED_RESAMPLED), each draw resampling
the seeds and, independently, the batch sizes (Owen's pigeonhole bootstrap) and refitting B_crit with its residuals'
signs drawn (a wild bootstrap crossed with the seed draw):
- linear scaling holds until B_crit (batchlab.analysis.b_crit_claims.degradation_test, B_crit from b_crit_of_seeds): the
  final loss of the regime's upper half within the tolerance of its lower half, and the batch sizes above B_crit
  worse than the regime's mean by more than the tolerance;
- the noise scale predicts B_crit (batchlab.analysis.b_crit_claims.noise_scale_test): B_simple at the target over B_crit
  within a factor f of 1.
Simulated runs are shaped like config/paper.yaml's: batch sizes 1, 2, 4, ..., 1024 for both the sweep and the
steps to target, 5 or 10 seeds, steps S(B) = S_min (1 + B_crit / B) with B_crit 32 (5 batch sizes at or below
B_crit/2, 5 at or above 2 B_crit, so the measured rule counts it). Every quantity (final loss, log steps, log
B_simple) carries an effect per batch size shared by all its seeds (a data order, a learning rate that suits some
batch sizes) plus independent seed noise, at the ratios of seed noise to size effect that the trend rules'
calibration uses (claim_calibration.NULL_SETTINGS). The nulls put the truth on the far side of, or at, the claim's
edge; power plants effects of stated sizes. Rates carry Wilson 95% intervals.

    python benchmarks/seed_rule_calibration.py --reps 300 --reps-10 150 --n-boot 200 --seed 0 --out docs/seed_rule_calibration.md

About 35 CPU-minutes; with --cache FILE --max-cpu 500 it runs in parts, the same command repeated until it prints;
with --shard K/N (each shard its own --cache, the last run reading the others' with --read-cache) on N cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

from batchlab.analysis.b_crit_claims import b_crit_of_seeds, degradation_test, noise_scale_test
from batchlab.analysis.measured import measured_b_crit
from batchlab.config import DEFAULT_TOLERANCE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from claim_calibration import NULL_SETTINGS  # noqa: E402  (beside this file: the trend rules' null settings)
from spread_shape_calibration import wilson  # noqa: E402

SIZES = 2 ** np.arange(11)  # 1 .. 1024, the sweep's and the steps to target's
B_CRIT = 32.0
S_MIN = 1000.0
LOSS = 0.3
TOLERANCE = DEFAULT_TOLERANCE["holds_until_critical_batch"]
FACTOR = DEFAULT_TOLERANCE["predicts_critical_batch"]
SEED_COUNTS = (5, 10)
# one unit of per-batch-size effect (its SD): relative final loss, log steps to target, log B_simple
LOSS_UNIT = 0.5 * TOLERANCE
STEPS_UNIT = 0.1
B_SIMPLE_UNIT = 0.1
RATIOS = NULL_SETTINGS  # (label, size-effect SD in units, seed-noise SD in units), as the trend rules' calibration
POWER_RATIO = RATIOS[2]
LOW_NOISE = ("1, both halved", 0.5, 0.5)  # linear scaling's power again, each effect SD τ/4 instead of τ/2
VERDICTS = ("replicated", "not replicated", "inconclusive")
TARGET_POWER = 0.8
MAX_FALSE = 0.05
CROSSED_SECTION = "## Samples seen and the scaling grid"  # the section benchmarks/crossed_claims_calibration.py writes

# degradation: planted relative change from batch size 1 (at or below B_crit, above it), in units of the tolerance;
# noise scale: planted B_simple / B_crit. The edges put the truth on the claim's boundary, where the rate of each
# verdict is the limit of its error rate from the side on which it is wrong (the least favourable null).
DEGRADATION_NULLS = (("flat", 0.0, 0.0), ("edge: τ above B_crit", 0.0, 1.0), ("holds: 4τ above B_crit", 0.0, 4.0))
DEGRADATION_POWER = (1.5, 2.0, 3.0, 6.0)
NOISE_NULLS = (("10x: far outside", 10.0), (f"{FACTOR:g}x: at the edge f", FACTOR), ("1x: B_simple = B_crit", 1.0))
NOISE_POWER = (1.5, 2.0, 4.5, 6.0)
NOISE_NEAR_EDGE = (2.5, 3.6)  # 1.2x inside and outside the edge


def run_frame(n_seeds: int, values: np.ndarray, column: str) -> pd.DataFrame:
    """A [batch size, seed] array as the long table the claims read."""
    return pd.DataFrame({"batch_size": np.repeat(SIZES, n_seeds), "seed": np.tile(np.arange(n_seeds), len(SIZES)),
                         column: values.ravel()})


def shared_and_seed(rng: np.random.Generator, n_seeds: int, size_sd: float, seed_sd: float) -> np.ndarray:
    """[batch size, seed] noise: an effect per batch size shared by its seeds plus independent seed noise."""
    return size_sd * rng.standard_normal((len(SIZES), 1)) + seed_sd * rng.standard_normal((len(SIZES), n_seeds))


def simulate_steps(rng, n_seeds: int, size_w: float, seed_w: float) -> pd.DataFrame:
    """Steps to target S(B) = S_min (1 + B_crit / B), log-normal noise per batch size and per run; every run reached."""
    log_noise = shared_and_seed(rng, n_seeds, STEPS_UNIT * size_w, STEPS_UNIT * seed_w)
    steps = S_MIN * (1 + B_CRIT / SIZES[:, None]) * np.exp(log_noise)
    return run_frame(n_seeds, steps, "steps").assign(reached=True)


def simulate_losses(rng, n_seeds: int, size_w: float, seed_w: float, below: float, above: float) -> pd.DataFrame:
    """Final losses: relative change `below` (x tolerance) at 1 < B <= B_crit and `above` beyond, plus noise."""
    change = np.where(SIZES > B_CRIT, above, np.where(SIZES > 1, below, 0.0)) * TOLERANCE
    noise = shared_and_seed(rng, n_seeds, LOSS_UNIT * size_w, LOSS_UNIT * seed_w)
    return run_frame(n_seeds, LOSS * (1 + change[:, None] + noise), "val_loss")


def simulate_noise(rng, steps: pd.DataFrame, n_seeds: int, size_w: float, seed_w: float, ratio: float) -> pd.DataFrame:
    """B_simple = ratio x B_crit at each run's crossing (one checkpoint, at it), log-normal noise per batch size and run."""
    log_noise = shared_and_seed(rng, n_seeds, B_SIMPLE_UNIT * size_w, B_SIMPLE_UNIT * seed_w)
    return pd.DataFrame({"batch_size": steps["batch_size"], "seed": steps["seed"], "fraction": 1.0,
                         "step": np.maximum(1, np.round(steps["steps"].to_numpy())).astype(int),
                         "b_simple": ratio * B_CRIT * np.exp(log_noise.ravel()), "method": "per_example"})


def b_crit_unmeasured(result: dict) -> bool:
    """Whether a verdict is inconclusive because B_crit is flagged (in the fit to every seed, or in too many draws)."""
    return result["verdict"] == "inconclusive" and "B_crit" in result.get("note", "")


def degradation_result(rng, n_seeds: int, size_w: float, seed_w: float, below: float, above: float, n_boot: int) -> dict:
    """degradation_test on one simulated study, B_crit refitted in every draw from the drawn seeds' steps."""
    steps = simulate_steps(rng, n_seeds, size_w, seed_w)
    table = simulate_losses(rng, n_seeds, size_w, seed_w, below, above)
    return degradation_test(table, "val_loss", b_crit_of_seeds(steps), TOLERANCE, n_boot)


def noise_result(rng, n_seeds: int, size_w: float, seed_w: float, ratio: float, n_boot: int) -> dict:
    """noise_scale_test on one simulated study."""
    steps = simulate_steps(rng, n_seeds, size_w, seed_w)
    noise = simulate_noise(rng, steps, n_seeds, size_w, seed_w, ratio)
    return noise_scale_test(noise, steps, FACTOR, n_boot)


def wrong_verdicts(row: dict) -> tuple[str, ...]:
    """The verdicts that are errors for a setting's truth (both at an edge, in the limit from either side)."""
    if row["kind"] == "degradation":
        holds, fails = row["below"] <= 1 and row["above"] >= 1, row["below"] > 1 or row["above"] <= 1
    else:
        holds = 1 / FACTOR <= row["planted"] <= FACTOR
        fails = row["planted"] >= FACTOR or row["planted"] <= 1 / FACTOR
    return tuple(v for v, bad in (("replicated", fails), ("not replicated", holds)) if bad)


def settings(seed_counts=SEED_COUNTS) -> list[dict]:
    """Every simulated setting: kind, seeds, noise ratio, planted truth and the verdicts that would be errors."""
    rows = []
    for n in seed_counts:
        for part, ratios in (("null", RATIOS), ("power", (POWER_RATIO,))):
            for label, size_w, seed_w in ratios:
                common = {"seeds": n, "ratio": label, "size_w": size_w, "seed_w": seed_w, "part": part}
                if part == "null":
                    deg = [(name, b, a) for name, b, a in DEGRADATION_NULLS]
                    noise = list(NOISE_NULLS)
                else:
                    deg = [(f"{a:g}τ above B_crit", 0.0, a) for a in DEGRADATION_POWER]
                    noise = [(f"{r:g}x", r) for r in NOISE_POWER]
                rows += [{"kind": "degradation", "truth": name, "below": b, "above": a, "planted": a, **common}
                         for name, b, a in deg]
                rows += [{"kind": "noise_scale", "truth": name, "planted": r, **common} for name, r in noise]
    label, size_w, seed_w = POWER_RATIO
    for n in seed_counts:  # last, as a setting's stream is seeded by its place in this list
        rows += [{"kind": "noise_scale", "truth": f"{r:g}x", "planted": r, "seeds": n, "ratio": label, "size_w": size_w,
                  "seed_w": seed_w, "part": "power"} for r in NOISE_NEAR_EDGE]
    label, size_w, seed_w = LOW_NOISE
    for n in seed_counts:
        rows += [{"kind": "degradation", "truth": f"{a:g}τ above B_crit", "below": 0.0, "above": a, "planted": a,
                  "seeds": n, "ratio": label, "size_w": size_w, "seed_w": seed_w, "part": "power"}
                 for a in DEGRADATION_POWER]
    return [{**row, "wrong": wrong_verdicts(row)} for row in rows]


def run_setting(row: dict, reps: int, seed: int, index: int, n_boot: int) -> dict:
    """Verdict counts of one setting over `reps` simulated studies from its own seeded stream, and its CPU seconds."""
    rng = np.random.default_rng([seed, index])
    counts, unmeasured = dict.fromkeys(VERDICTS, 0), 0
    start = time.process_time()
    for _ in range(reps):
        if row["kind"] == "degradation":
            result = degradation_result(rng, row["seeds"], row["size_w"], row["seed_w"], row["below"], row["above"], n_boot)
        else:
            result = noise_result(rng, row["seeds"], row["size_w"], row["seed_w"], row["planted"], n_boot)
        counts[result["verdict"]] += 1
        unmeasured += b_crit_unmeasured(result)
    return {**row, "reps": reps, "counts": counts, "unmeasured": unmeasured, "cpu_s": time.process_time() - start}


def calibration_rows(reps: int = 200, seed: int = 0, n_boot: int = 200, reps_by_seeds: dict | None = None,
                     cache: Path | None = None, max_cpu_s: float = math.inf, more_caches: tuple = (),
                     shard: tuple[int, int] = (0, 1)) -> tuple[list[dict], bool]:
    """Run every setting, each from a stream seeded by (seed, its index in settings()), and whether all are done.

    reps_by_seeds: reps for a number of seeds other than `reps`. cache: a JSON file of the settings done, read first
    and written after each one; no new setting starts after max_cpu_s CPU seconds, so a long run can be done in parts
    by repeating the command. more_caches: further such files, read only (another shard's). shard (k, n): run only
    the settings whose index is k modulo n, so that n processes share the work (each with its own cache)."""
    done = {}
    for path in (*more_caches, cache):
        if path is not None and path.exists():
            done.update(json.loads(path.read_text()))
    out, start, complete = [], time.process_time(), True
    for index, row in enumerate(settings()):
        n = (reps_by_seeds or {}).get(row["seeds"], reps)
        key = json.dumps([n, seed, n_boot, index, row["kind"], row["seeds"], row["ratio"], row["truth"]], ensure_ascii=False)
        if key not in done:
            if index % shard[1] != shard[0]:
                complete = False
                continue
            if time.process_time() - start > max_cpu_s:
                return out, False
            done[key] = run_setting(row, n, seed, index, n_boot)
            if cache is not None:
                cache.write_text(json.dumps(done, ensure_ascii=False))
        out.append({**done[key], "wrong": tuple(done[key]["wrong"])})
    return out, complete


def rate(row: dict, verdict: str) -> float:
    """A verdict's share of a setting's studies."""
    return row["counts"][verdict] / row["reps"]


def rate_text(row: dict, verdict: str) -> str:
    """A verdict's rate as a percentage with its Wilson 95% interval: '4.9% [4.0, 6.0]'."""
    low, high = wilson(row["counts"][verdict], row["reps"])
    return f"{100 * rate(row, verdict):.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def cell(row: dict, verdict: str) -> str:
    """A rate for a table, in bold where the verdict is an error for the setting's truth."""
    text = rate_text(row, verdict)
    return f"**{text}**" if verdict in row["wrong"] else text


KIND_NAMES = {"degradation": "linear scaling holds until B_crit (`degradation_test`)",
              "noise_scale": "the noise scale predicts B_crit (`noise_scale_test`)"}


def null_table(rows: list[dict], kind: str) -> list[str]:
    """Every null setting of a kind: the rate of each verdict, errors in bold."""
    lines = ["| seeds | seed noise / size effect | truth | replicated | not replicated | inconclusive | "
             "B_crit not measured |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == kind and r["part"] == "null":
            lines.append(f"| {r['seeds']} | {r['ratio']} | {r['truth']} | {cell(r, 'replicated')} | "
                         f"{cell(r, 'not replicated')} | {rate_text(r, 'inconclusive')} | "
                         f"{100 * r['unmeasured'] / r['reps']:.0f}% |")
    return lines


def worst(rows: list[dict], kind: str, seeds: int, verdict: str, edge: bool) -> dict | None:
    """The null setting (edges or the others) with the highest rate of a wrong `verdict`."""
    pool = [r for r in rows if r["kind"] == kind and r["seeds"] == seeds and r["part"] == "null"
            and verdict in r["wrong"] and (len(r["wrong"]) == 2) == edge]
    return max(pool, key=lambda r: rate(r, verdict), default=None)


def summary_table(rows: list[dict]) -> list[str]:
    """Per kind and number of seeds, the worst false rate of each verdict away from the edge and at it."""
    lines = ["| claim | seeds | worst false replicated, clear null | worst false not replicated, claim clearly true | "
             "worst replicated at the edge | worst not replicated at the edge | at most 5% everywhere |",
             "|---|---|---|---|---|---|---|"]
    for kind in KIND_NAMES:
        for n in sorted({r["seeds"] for r in rows if r["kind"] == kind}):
            found = [worst(rows, kind, n, v, e) for e in (False, True) for v in ("replicated", "not replicated")]
            text = [f"{rate_text(w, v)} ({w['truth']}, ratio {w['ratio'].split(':')[0]})" if w else "–"
                    for w, v in zip(found, ("replicated", "not replicated") * 2)]
            lines.append(f"| {kind} | {n} | " + " | ".join(text) + f" | {target_met(rows, kind, n)} |")
    return lines


def goal_of(row: dict) -> str | None:
    """The correct verdict for a setting off the edge (None at an edge, where either is an error in the limit)."""
    if len(row["wrong"]) != 1:
        return None
    return "not replicated" if row["wrong"][0] == "replicated" else "replicated"


def power_rows(rows: list[dict], kind: str, seeds: int, ratio: str = POWER_RATIO[0]) -> list[dict]:
    """The settings at the power ratio (or `ratio`) with a correct verdict, by planted effect."""
    pool = [r for r in rows if r["kind"] == kind and r["seeds"] == seeds and r["ratio"] == ratio and goal_of(r)]
    return sorted(pool, key=lambda r: r["planted"])


def power_table(rows: list[dict], kind: str, ratio: str = POWER_RATIO[0]) -> list[str]:
    """The correct verdict's rate at each planted effect (seed noise / size effect 1), and the wrong verdict's."""
    unit = "change above B_crit (x τ)" if kind == "degradation" else "B_simple / B_crit"
    lines = [f"| seeds | planted {unit} | correct verdict | its rate | its rate where B_crit is measured | "
             "wrong verdict's rate | inconclusive |", "|---|---|---|---|---|---|---|"]
    for n in sorted({r["seeds"] for r in rows if r["kind"] == kind}):
        for r in power_rows(rows, kind, n, ratio):
            goal = goal_of(r)
            measured = r["reps"] - r["unmeasured"]
            low, high = wilson(r["counts"][goal], measured)
            among = (f"{100 * r['counts'][goal] / measured:.1f}% [{100 * low:.1f}, {100 * high:.1f}] of {measured}"
                     if measured else "–")
            lines.append(f"| {n} | {r['planted']:g} | {goal} | {rate_text(r, goal)} | {among} | "
                         f"{rate_text(r, r['wrong'][0])} | {rate_text(r, 'inconclusive')} |")
    return lines


def smallest_detected(rows: list[dict], kind: str, seeds: int) -> list[tuple[str, str]]:
    """The planted effects nearest the claim's edge whose correct verdict comes out at least TARGET_POWER of the time."""
    found = []
    pool = power_rows(rows, kind, seeds)
    for goal in ("replicated", "not replicated"):
        hits = [r for r in pool if goal_of(r) == goal and rate(r, goal) >= TARGET_POWER]
        tried = [r for r in pool if goal_of(r) == goal]
        if not tried:
            continue
        if kind == "degradation":
            best = (min if goal == "replicated" else max)(hits, key=lambda r: r["planted"], default=None)
            what = "change above B_crit" if goal == "replicated" else "flat losses"
            text = f"{best['planted']:g}τ ({rate_text(best, goal)})" if best else ""
        else:
            best = (max if goal == "replicated" else min)(hits, key=lambda r: r["planted"], default=None)
            what = "B_simple / B_crit"
            text = ""
            if best:
                off = FACTOR / best["planted"] if goal == "replicated" else best["planted"] / FACTOR
                text = f"{best['planted']:g} ({off:.2g}x from the edge; {rate_text(best, goal)})"
        if not best:
            top = max(tried, key=lambda r: rate(r, goal))
            unit = "τ" if kind == "degradation" else ""
            text = f"none on the grid (at most {rate_text(top, goal)}, at {top['planted']:g}{unit})"
        found.append((f"{goal}: {what}", text))
    return found


def detected_table(rows: list[dict]) -> list[str]:
    """The smallest effect detected TARGET_POWER of the time, per kind, number of seeds and direction."""
    lines = ["| claim | seeds | verdict: planted | nearest the edge detected ≥ 80% |", "|---|---|---|---|"]
    for kind in KIND_NAMES:
        for n in sorted({r["seeds"] for r in rows if r["kind"] == kind}):
            for what, text in smallest_detected(rows, kind, n):
                lines.append(f"| {kind} | {n} | {what} | {text} |")
    return lines


def edge_table(rows: list[dict]) -> list[str]:
    """At each claim's edge: the rate of "replicated" / "not replicated" by number of seeds and noise ratio."""
    ratios = [label for label, _, _ in RATIOS]
    lines = ["| claim | seeds | " + " | ".join(f"ratio {r.split(':')[0]}" for r in ratios) + " |",
             "|---|---|" + "---|" * len(ratios)]
    for kind in KIND_NAMES:
        for n in sorted({r["seeds"] for r in rows if r["kind"] == kind}):
            edge = {r["ratio"]: r for r in rows if r["kind"] == kind and r["seeds"] == n and len(r["wrong"]) == 2}
            lines.append(f"| {kind} | {n} | " + " | ".join(
                f"{100 * rate(edge[r], 'replicated'):.1f}% / {100 * rate(edge[r], 'not replicated'):.1f}%" if r in edge
                else "–" for r in ratios) + " |")
    return lines


def flagged_text(rows: list[dict]) -> str:
    """How often B_crit is not measured at each noise ratio, over every null setting."""
    parts = []
    for label, _, _ in RATIOS:
        pool = [r for r in rows if r["ratio"] == label and r["part"] == "null"]
        if pool:
            share = sum(r["unmeasured"] for r in pool) / sum(r["reps"] for r in pool)
            parts.append(f"{100 * share:.0f}% at ratio {label.split(':')[0]}")
    return ", ".join(parts)


def b_crit_spread(n_fits: int = 500, seed: int = 0) -> float:
    """SD of log B_crit fitted to noiseless S(B) times one unit of per-batch-size effect (no seed noise): the error
    that every seed of a study shares, and that no draw of seeds shows."""
    rng = np.random.default_rng([seed, 99])
    steps = S_MIN * (1 + B_CRIT / SIZES) * np.exp(STEPS_UNIT * rng.standard_normal((n_fits, len(SIZES))))
    logs = [math.log(measured_b_crit(SIZES, row)[0]) for row in steps]
    return float(np.std(logs))


def power_note(rows: list[dict]) -> str:
    """Why "replicated" is rare for linear scaling even at large planted changes, with the rates of the largest one."""
    parts = []
    for n in sorted({r["seeds"] for r in rows if r["kind"] == "degradation"}):
        top = max(power_rows(rows, "degradation", n), key=lambda r: r["planted"], default=None)
        if top:
            parts.append(f"at {n} seeds and {top['planted']:g}τ above B_crit \"replicated\" "
                         f"{100 * rate(top, 'replicated'):.0f}%, inconclusive {100 * rate(top, 'inconclusive'):.0f}% "
                         f"(B_crit not measured in {100 * top['unmeasured'] / top['reps']:.0f}%)")
    return (f"Linear scaling's \"replicated\" needs two intervals to clear τ: the change above B_crit, which a large "
            f"planted change clears, and the change of the regime's upper half from its lower half, which must stay "
            f"below τ. With a per-batch-size effect of SD {LOSS_UNIT / TOLERANCE:g}τ that difference, of the means of 2 "
            f"or 3 batch sizes against 3, has an SD of about {LOSS_UNIT / TOLERANCE * math.sqrt(1 / 2.5 + 1 / 3):.2f}τ, "
            f"so its interval's upper end passes τ in many studies whose regime is flat in truth, whatever the change "
            f"above: {'; '.join(parts)}. The regime cannot be shown flat within τ from 5 or 6 batch sizes whose own "
            f"effects are that large; more batch sizes below B_crit, or a wider tolerance, would. With both noises halved "
            f"(each SD {LOSS_UNIT / TOLERANCE / 2:g}τ) the design sees it: {low_noise_power(rows)}. The noise scale's "
            f"power is limited where B_crit is not measured (the fit's RMS residual over the rule's limit) and near the "
            f"edge f.")


def low_noise_power(rows: list[dict]) -> str:
    """Linear scaling's "replicated" rate at each seed count's smallest planted change, with both noises halved."""
    parts = []
    for n in sorted({r["seeds"] for r in rows if r["kind"] == "degradation"}):
        pool = power_rows(rows, "degradation", n, LOW_NOISE[0])
        hits = [r for r in pool if rate(r, "replicated") >= TARGET_POWER]
        if hits:
            best = min(hits, key=lambda r: r["planted"])
            parts.append(f"at {n} seeds \"replicated\" {rate_text(best, 'replicated')} at {best['planted']:g}τ above B_crit")
        elif pool:
            top = max(pool, key=lambda r: rate(r, "replicated"))
            parts.append(f"at {n} seeds at most {rate_text(top, 'replicated')} (at {top['planted']:g}τ)")
    return "; ".join(parts) or "not simulated"


def target_met(rows: list[dict], kind: str, seeds: int) -> str:
    """'no' where some worst false rate's Wilson interval lies above MAX_FALSE, 'yes' where every one lies at or below
    it, else 'not shown either way'."""
    found = [(worst(rows, kind, seeds, v, e), v) for e in (False, True) for v in ("replicated", "not replicated")]
    bounds = [wilson(w["counts"][v], w["reps"]) for w, v in found if w]
    if any(low > MAX_FALSE for low, _ in bounds):
        return "no"
    return "yes" if all(high <= MAX_FALSE for _, high in bounds) else "not shown either way"


def best_power(rows: list[dict], kind: str, seeds: int, goal: str) -> dict | None:
    """The power setting (seed noise / size effect 1) where the correct verdict `goal` comes out most often."""
    pool = [r for r in power_rows(rows, kind, seeds) if goal_of(r) == goal]
    return max(pool, key=lambda r: rate(r, goal), default=None)


def headline(rows: list[dict]) -> str:
    """One paragraph: the worst false rates at the edges and away from them, whether the target is met, and power."""
    edge, clear, power, met = [], [], [], []
    for kind, name in (("degradation", "linear scaling"), ("noise_scale", "the noise scale")):
        for n in sorted({r["seeds"] for r in rows if r["kind"] == kind}):
            at = [worst(rows, kind, n, v, True) for v in ("replicated", "not replicated")]
            edge.append(f"{name} at {n} seeds {100 * rate(at[0], 'replicated'):.1f}% / "
                        f"{100 * rate(at[1], 'not replicated'):.1f}%")
            off = [(w, v) for v in ("replicated", "not replicated") for w in [worst(rows, kind, n, v, False)] if w]
            clear.append(max(100 * rate(w, v) for w, v in off))
            found = []
            for goal in ("replicated", "not replicated"):
                best = best_power(rows, kind, n, goal)
                if best:
                    unit = "τ above B_crit" if kind == "degradation" else "x B_crit"
                    found.append(f"\"{goal}\" {100 * rate(best, goal):.0f}% (at {best['planted']:g}{unit})")
            power.append(f"{name} at {n} seeds {', '.join(found)}")
            met.append(f"{name} at {n} seeds: {target_met(rows, kind, n)}")
    return (f"Each draw now resamples the batch sizes as well as the seeds and refits B_crit with its residuals' signs "
            f"drawn. At the claim's edge, where a calibrated 95% interval gives each wrong verdict at most 2.5%, the "
            f"worst rate over the noise ratios of \"replicated\" / \"not replicated\" is: {'; '.join(edge)}. In the "
            f"clear nulls the wrong verdict stays at most {max(clear):.1f}%. Every false rate at most 5% (by its Wilson "
            f"interval): {'; '.join(met)}. Power with seed noise equal to the size effect, at the planted effect "
            f"where it is highest: {'; '.join(power)}.")


DIAGNOSIS = [
    "## How the tests resample",
    "A batch size has an effect that all its seeds share (a data order, a learning rate that suits it). A draw of seeds "
    "alone keeps that effect the same in every draw, so its interval closes on an estimate that carries the effects "
    "in full: with the seed bootstrap alone (the previous version of this document) the wrong verdict at the edge came "
    "out in about half the studies at 5 and at 10 seeds. Now every draw resamples three things, independently:",
    "- the seeds, with replacement, keeping each seed's runs at every batch size together (one draw serves the "
    "losses, the steps to target and B_simple);",
    "- the batch sizes of a statistic over batch sizes, with replacement (Owen's pigeonhole bootstrap for crossed "
    "effects, `resampling.pigeonhole_draws` and `crossed_mean`): for linear scaling within each of three parts, the "
    "regime's lower half (B ≤ √(B_min·B_crit)), its upper half (up to B_crit) and the batch sizes above B_crit; for "
    "the noise scale over the batch sizes whose runs have a B_simple. With k units a bootstrap sees (k − 1)/k of a "
    "mean's variance; each batch size's deviation from its part's mean is widened by k/(k − 1), its leverage, so the "
    "draws err on the wide side (k/(k − 1) of the variance);",
    "- B_crit, whose batch sizes are a fixed design: each batch size's log residual of the S(B) fit to all seeds, "
    "divided by 1 − its leverage (HC3), times a random sign, added to the drawn seeds' mean steps, then refitted "
    "(`b_crit_claims.SeedFit.draws`, a vectorised profile fit that matches `cbs.fit_steps_model`). A batch size's effect on the "
    "steps moves B_crit in the draws as it moved the fit to the data. A draw's B_crit is flagged by the measured rule "
    "(outside the batch sizes reached, or not spanning both regimes); the fit's RMS residual is judged on the data only, "
    "since the draws' residuals are widened on purpose.",
    "Linear scaling's reference is the mean over every batch size at or below B_crit (no longer batch size 1 alone, "
    "one unit whose own effect shifted every change): the change above B_crit is measured from it, and the regime's "
    "upper half must stay within τ of its lower half. Each part needs at least 2 batch sizes.",
    "",
    "## What limits the power",
    "{power_note}",
    "",
    "## Not simulated by this script",
    "`samples_exponent` (the clock the curves follow, within B_crit, with the batch sizes as units) and the scaling "
    "grid's slopes (`log_slope_data`, `log_slope_width`, batch sizes crossed with the seeds); their rates are the last section, written by "
    "`benchmarks/crossed_claims_calibration.py` (this script keeps it when it rewrites the file).",
]


def report(rows: list[dict], args: argparse.Namespace, command: str) -> str:
    """The whole markdown report."""
    cpu = sum(r["cpu_s"] for r in rows)
    reps = {r["seeds"]: r["reps"] for r in rows}
    spread = b_crit_spread(seed=args.seed)
    lines = [
        "# Calibration of the scorecard's bootstrap verdicts on B_crit",
        "",
        "How often `degradation_test` (linear scaling holds until B_crit) and `noise_scale_test` (the noise scale "
        "predicts B_crit) give a wrong verdict at 5 and 10 seeds when each batch size has an effect shared by its seeds, "
        "and how often they find a planted effect. Both draw seeds crossed with batch sizes, and refit B_crit in a wild "
        "bootstrap crossed with the seed draw (below: How the tests resample).",
        "",
        f"**{headline(rows)}**",
        "",
        "```",
        command,
        "```",
        "",
        "## Settings",
        f"- date {dt.date.today().isoformat()}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, pandas {pd.__version__}; {cpu:.0f} s of CPU on one core, summed over the settings "
        "(run in two shards on two cores: `--shard K/2 --cache FILE_K`, then the command above with `--cache FILE_0 "
        "--read-cache FILE_1`)",
        f"- {', '.join(f'{n} seeds: {k} simulated studies per setting' for n, k in sorted(reps.items()))}; the tests' own bootstrap n_boot {args.n_boot} (the scorecard's default is "
        f"2000), level 0.95; seed {args.seed}; brackets: Wilson 95% intervals",
        f"- batch sizes {', '.join(map(str, SIZES))} for the final losses and for the steps to target (config/paper.yaml "
        f"sweeps them all); every run reaches the target; S(B) = S_min (1 + B_crit / B), S_min {S_MIN:g}, B_crit "
        f"{B_CRIT:g}: 5 batch sizes at or below B_crit/2 and 5 at or above 2 B_crit, so the measured rule "
        "(batchlab.analysis.measured) counts the noiseless fit",
        f"- noise, for every quantity: an effect per batch size, N(0, size SD), shared by all its seeds, plus seed noise "
        f"N(0, seed SD) per run; one unit of SD is {LOSS_UNIT:g} of the final loss (relative, {LOSS_UNIT / TOLERANCE:g}τ), "
        f"{STEPS_UNIT:g} in log steps to target and {B_SIMPLE_UNIT:g} in log B_simple; the ratio seed SD / size SD is "
        + ", ".join(label.split(":")[0] for label, _, _ in RATIOS[:-1])
        + " (size SD one unit), or ∞ (no size effect, seed SD one unit)",
        f"- linear scaling: final loss {LOSS:g} x (1 + planted change + noise), the change 0 at B ≤ {B_CRIT:g} (every "
        f"setting here plants a flat regime) and `above` beyond; tolerance τ {TOLERANCE:g} (the default); B_crit "
        "refitted in every draw (`b_crit_of_seeds(steps).draws`) to the drawn seeds' steps with its residuals' signs drawn",
        f"- noise scale: B_simple = planted ratio x B_crit at every run, at a checkpoint at its crossing of the target "
        f"(no jackknife SE, so no estimator noise is added to the draws); factor f {FACTOR:g} (the default); the learning "
        "rate counted as tuned",
        f"- B_crit not measured (the S(B) fit flagged, in the fit to all seeds or in more than 2.5% of the draws), share "
        f"of the studies under the nulls: {flagged_text(rows)}; at ratio 10 (seed SD 1 in log steps) the fit misses the "
        "steps by more than the rule's 0.15 RMS, so every verdict there is inconclusive",
        "- at paper scale (config/paper.yaml) the linear-scaling claim of the classifier studies takes its B_crit from "
        "the sweep's 5 seeds, so its verdict is live; the noise-scale claim of the autoencoder studies takes it from "
        "3 train-to-target seeds (`to_target.seeds`), so it is inconclusive by the 5-seed rule until that list grows",
        f"- one unit of per-batch-size effect on the steps alone moves the fitted B_crit by {100 * spread:.0f}% (SD of "
        "log B_crit over 500 noiseless-seed fits), an error every seed of a study shares and that only the wild "
        "bootstrap of the fit shows",
        "",
        "## Summary",
        "False rates under the nulls, worst over the ratios of seed noise to size effect. A clear null: the truth well "
        "on the wrong side (flat losses, or B_simple 10x B_crit, for \"replicated\"; the loss 4τ worse above B_crit, "
        "or B_simple = B_crit, for \"not replicated\"). At the edge (a change of exactly τ above B_crit; B_simple "
        f"exactly {FACTOR:g}x B_crit) the rate of each verdict is the limit of its error rate from the side on which it "
        "is wrong, the least favourable null: a calibrated 95% interval gives each at most 2.5%. Target: at most 5%; "
        "the last column says \"no\" where some rate's Wilson interval lies above it.",
        "",
        *summary_table(rows),
        "",
        "At the edge, by ratio of seed noise to size effect (\"replicated\" / \"not replicated\"; each is an error "
        "in the limit):",
        "",
        *edge_table(rows),
        "",
        *(line.replace("{power_note}", power_note(rows)) for line in DIAGNOSIS),
        "",
        "## Linear scaling holds until B_crit: every null setting",
        "Errors in bold (at the edge both verdicts are). B_crit not measured: the share of studies inconclusive because "
        "B_crit is flagged.",
        "",
        *null_table(rows, "degradation"),
        "",
        "## The noise scale predicts B_crit: every null setting",
        "",
        *null_table(rows, "noise_scale"),
        "",
        f"## Power (seed noise / size effect {POWER_RATIO[0]})",
        "The correct verdict's rate at planted effects, and the effect nearest the claim's edge found at least 80% of "
        "the time. Studies whose B_crit is not measured are inconclusive, which caps the power.",
        "",
        *detected_table(rows),
        "",
        *power_table(rows, "degradation"),
        "",
        *power_table(rows, "noise_scale"),
        "",
        f"Linear scaling with both noises halved (per-batch-size effect and seed noise each SD "
        f"{LOSS_UNIT / TOLERANCE / 2:g}τ):",
        "",
        *power_table(rows, "degradation", LOW_NOISE[0]),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the settings (resuming from --cache), print the report and write it to --out once all are done."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200, help="simulated studies per setting at 5 seeds")
    p.add_argument("--reps-10", type=int, default=100, help="simulated studies per setting at 10 seeds "
                   "(each costs about twice the CPU)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap draws inside each test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, help="JSON file of finished settings: a rerun resumes from it")
    p.add_argument("--max-cpu", type=float, default=math.inf, help="start no new setting after this many CPU seconds "
                   "(with --cache: repeat the command to go on)")
    p.add_argument("--read-cache", type=Path, action="append", default=[], help="another shard's cache, read only")
    p.add_argument("--shard", default="0/1", help="K/N: run only the settings whose index is K modulo N")
    p.add_argument("--out", help="also write the markdown report here")
    args = p.parse_args(argv)
    shard = tuple(int(x) for x in args.shard.split("/"))
    rows, complete = calibration_rows(args.reps, args.seed, args.n_boot, {10: args.reps_10}, cache=args.cache,
                                      max_cpu_s=args.max_cpu, more_caches=tuple(args.read_cache), shard=shard)
    if not complete:
        print(f"{len(rows)} of {len(settings())} settings done; repeat the command to go on", file=sys.stderr)
        return 3
    shown = [a for a in (argv if argv is not None else sys.argv[1:])]
    skip = {"--cache", "--max-cpu", "--read-cache", "--shard"}
    kept = [a for i, a in enumerate(shown) if a not in skip and (i == 0 or shown[i - 1] not in skip)]
    text = report(rows, args, "python benchmarks/seed_rule_calibration.py " + " ".join(kept))
    print(text)
    if args.out:
        out = Path(args.out)
        kept = out.read_text(encoding="utf-8").split(CROSSED_SECTION, 1) if out.exists() else []
        tail = "\n" + CROSSED_SECTION + kept[1] if len(kept) == 2 else ""
        out.write_text(text + "\n" + tail, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
