"""Error rates and power of the samples-seen claim and the scaling grid's slopes at 5 and 10 seeds, by simulation.

The sibling of benchmarks/seed_rule_calibration.py (same noise model, batch sizes and ratios of seed noise to a
per-batch-size effect), for the three statistics whose units are batch sizes and not seeds alone:
- samples seen set the loss (batchlab.analysis.samples_claim: the regime from below_b_crit on simulated steps to
  target, then samples_predict_test): curves whose log loss is -0.3 log(B^c x step), logged at 7 steps geometric
  from step 10 to the end of an equal-samples budget. c = 1: samples seen set the loss; c = 0: steps do; the claim's
  edges are c = 1 - δ and 1 + δ. Every batch size's curve carries an offset shared by its seeds, each run one of its
  own, and each point noise;
- the grid's slopes (batchlab.analysis.scaling.analyse_grid, evaluate_scaling_claims): a 3 x 3 grid of cells
  (training-set size x 1, 4, 16; width x 0.5, 1, 2), each a steps-to-target study over batch sizes 1 .. 1024 with
  B_crit = 32 x 4^(a i) x 2^(b j), an effect per (cell, batch size) on log steps shared by its seeds, and seed noise.
  Data: replicated when the slope's interval lies above 0 (edge a = 0); width: within ±0.25 (edge b = 0.25).
Rates carry Wilson 95% intervals. It writes its section of docs/seed_rule_calibration.md (from SECTION on):

    python benchmarks/crossed_claims_calibration.py --reps 400 --grid-reps 100 --n-boot 200 --seed 0 \
        --out docs/seed_rule_calibration.md

With --shard K/N --cache FILE_K on N cores, then the command with --cache FILE_0 --read-cache FILE_1 ... to print.
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

from batchlab.analysis.samples_claim import below_b_crit, samples_predict_test
from batchlab.analysis.scaling import analyse_grid, evaluate_scaling_claims
from batchlab.config import DEFAULT_TOLERANCE, Claim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_rule_calibration import (  # noqa: E402  (beside this file: the same noise model and batch sizes)
    B_CRIT, CROSSED_SECTION, LOW_NOISE, POWER_RATIO, RATIOS, S_MIN, SEED_COUNTS, SIZES, STEPS_UNIT, VERDICTS, shared_and_seed,
    simulate_steps,
)
from spread_shape_calibration import wilson  # noqa: E402

SECTION = CROSSED_SECTION
LOSS_UNIT = 0.1  # one unit of per-batch-size effect and of seed noise: SD in log loss
EXPONENT = 0.3
POINTS, FIRST_STEP = 7, 10  # logged points per run, geometric in steps from step 10 to the end of the budget
BUDGET = 1024 * 64  # samples every batch size trains on
WIDTH_TOL = DEFAULT_TOLERANCE["flat_with_model_size"]
DATA_STEPS, WIDTH_STEPS = (1.0, 4.0, 16.0), (0.5, 1.0, 2.0)
SAMPLES_TOL = DEFAULT_TOLERANCE["predicted_by_samples_seen"]  # δ: replicated within 1 ± δ of samples seen's c = 1
SAMPLES_POWER = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9)  # planted exponents c, either side of the edge 1 - δ
GRID_NULLS = (("edges: a 0, b 0.25", 0.0, WIDTH_TOL), ("a -0.5, b 0.75", -0.5, 0.75), ("a 0.5, b 0", 0.5, 0.0))
GRID_POWER = ((0.1, 0.0), (0.2, 0.5), (0.3, 0.75))
CLAIMS = [Claim(id="data", source="Zhang", metric="critical_batch_size", expect="increases_with_data_size"),
          Claim(id="width", source="Zhang", metric="critical_batch_size", expect="flat_with_model_size")]


def curve_points(sizes, c: float) -> pd.DataFrame:
    """The logged points of every batch size with their noiseless log loss -0.3 log(B^c step)."""
    b = np.repeat(np.asarray(sizes, dtype=float), POINTS)
    step = np.concatenate([np.geomspace(FIRST_STEP, BUDGET / size, POINTS) for size in sizes]).round()
    return pd.DataFrame({"batch_size": b.astype(int), "step": step.round().astype(int), "samples_seen": (step * b).round(),
                         "log_loss": -EXPONENT * (c * np.log(b) + np.log(step))})


def simulate_curves(rng, n_seeds: int, size_w: float, seed_w: float, c: float) -> pd.DataFrame:
    """Curves of every batch size and seed: loss exp(noiseless + a batch size's offset + a run's + a point's)."""
    points = curve_points(SIZES, c)
    per_size = shared_and_seed(rng, n_seeds, LOSS_UNIT * size_w, LOSS_UNIT * seed_w / math.sqrt(2))
    k = POINTS
    log_loss = (points["log_loss"].to_numpy()[:, None] + np.repeat(per_size, k, axis=0)
                + LOSS_UNIT * seed_w / math.sqrt(2) * rng.standard_normal((len(points), n_seeds)))
    return pd.DataFrame({"batch_size": np.repeat(points["batch_size"].to_numpy(), n_seeds),
                         "step": np.repeat(points["step"].to_numpy(), n_seeds),
                         "samples_seen": np.repeat(points["samples_seen"].to_numpy(), n_seeds),
                         "seed": np.tile(np.arange(n_seeds), len(points)), "val_loss": np.exp(log_loss).ravel()})


def samples_result(rng, n_seeds: int, size_w: float, seed_w: float, c: float) -> dict:
    """samples_predict_test within the regime at or below the B_crit fitted to simulated steps, as the scorecard runs it."""
    steps = simulate_steps(rng, n_seeds, size_w, seed_w)
    inside, _, why = below_b_crit(simulate_curves(rng, n_seeds, size_w, seed_w, c), steps)
    result = samples_predict_test(inside, "val_loss", SAMPLES_TOL)
    return {**result, "verdict": "inconclusive", "note": why} if why else result


def simulate_grid(rng, n_seeds: int, size_w: float, seed_w: float, a: float, b: float):
    """The grid's cells and each cell's steps to target, B_crit = 32 x 4^(a i) x 2^(b j) for i, j in -1, 0, 1."""
    cells, steps = [], []
    for n in DATA_STEPS:
        for w in WIDTH_STEPS:
            b_crit = B_CRIT * (n / 4.0) ** a * w ** b
            noise = shared_and_seed(rng, n_seeds, STEPS_UNIT * size_w, STEPS_UNIT * seed_w)
            values = S_MIN * (1 + b_crit / SIZES[:, None]) * np.exp(noise)
            cells.append({"study": f"g-n{n:g}-w{w:g}", "train_samples": int(1000 * n), "width_factor": w,
                          "n_params": int(1000 * w)})
            steps.append(pd.DataFrame({"batch_size": np.repeat(SIZES, n_seeds), "seed": np.tile(np.arange(n_seeds), len(SIZES)),
                                       "steps": values.ravel(), "reached": True}))
    return pd.DataFrame(cells), steps


def grid_verdicts(rng, n_seeds: int, size_w: float, seed_w: float, a: float, b: float, n_boot: int) -> dict:
    """The two slopes' verdicts on one simulated grid, as the scorecard gives them."""
    table, slopes = analyse_grid(*simulate_grid(rng, n_seeds, size_w, seed_w, a, b), n_boot=n_boot, rng=rng)
    card = evaluate_scaling_claims(CLAIMS, table, slopes)
    return dict(zip(card["claim"], card["verdict"]))


def samples_wrong(lead: float) -> tuple[str, ...]:
    return tuple(v for v, bad in (("replicated", lead <= 1e-9), ("not replicated", lead >= -1e-9)) if bad)


def settings(seed_counts=SEED_COUNTS) -> list[dict]:
    """Every simulated setting; a grid setting scores both slopes, each with the verdicts that would be errors."""
    edge = 1 - SAMPLES_TOL
    rows = []
    for n in seed_counts:
        for part, ratios in (("null", RATIOS), ("power", (POWER_RATIO,))):
            for label, size_w, seed_w in ratios:
                common = {"seeds": n, "ratio": label, "size_w": size_w, "seed_w": seed_w, "part": part}
                if part == "null":
                    cs = [("steps set the loss: c 0", 0.0), (f"edge: c {edge:g}", edge), ("samples: c 1", 1.0)]
                    grid = list(GRID_NULLS)
                else:
                    cs = [(f"c {c:g}", c) for c in SAMPLES_POWER]
                    grid = [(f"a {a:g}, b {b:g}", a, b) for a, b in GRID_POWER]
                rows += [{"kind": "samples", "truth": t, "c": c, "planted": c, **common} for t, c in cs]
                rows += [{"kind": "grid", "truth": t, "a": a, "b": b, **common} for t, a, b in grid]
    label, size_w, seed_w = LOW_NOISE  # after the rest, so that their indices (and the streams they seed) stay
    for n in seed_counts:
        common = {"seeds": n, "ratio": label, "size_w": size_w, "seed_w": seed_w, "part": "low noise"}
        rows += [{"kind": "samples", "truth": f"c {c:g}", "c": c, "planted": c, **common} for c in SAMPLES_POWER]
    for row in rows:
        if row["kind"] == "samples":  # at the edge 1 - δ both verdicts are errors
            distance = SAMPLES_TOL - abs(row["c"] - 1)
            edge_row = row["truth"].startswith("edge")
            row["wrong"] = {"samples": ("replicated", "not replicated") if edge_row else samples_wrong(distance)}
        else:
            row["wrong"] = {"data": samples_wrong(row["a"]), "width": samples_wrong(WIDTH_TOL - abs(row["b"]))}
    return rows


def run_setting(row: dict, reps: int, seed: int, index: int, n_boot: int) -> dict:
    """Verdict counts per claim of one setting over `reps` simulated studies from its own seeded stream."""
    rng = np.random.default_rng([seed, index])
    counts = {claim: dict.fromkeys(VERDICTS, 0) for claim in row["wrong"]}
    start = time.process_time()
    for _ in range(reps):
        if row["kind"] == "samples":
            verdicts = {"samples": samples_result(rng, row["seeds"], row["size_w"], row["seed_w"], row["c"])["verdict"]}
        else:
            verdicts = grid_verdicts(rng, row["seeds"], row["size_w"], row["seed_w"], row["a"], row["b"], n_boot)
        for claim, verdict in verdicts.items():
            counts[claim][verdict] += 1
    return {**row, "reps": reps, "counts": counts, "cpu_s": time.process_time() - start}


def calibration_rows(reps: int, seed: int, n_boot: int, reps_10: int, cache: Path | None = None, more_caches=(),
                     shard=(0, 1), grid_reps: int | None = None) -> tuple[list[dict], bool]:
    """Every setting from a stream seeded by (seed, its index), resumed from the caches; and whether all are done."""
    done = {}
    for path in (*more_caches, cache):
        if path is not None and path.exists():
            done.update(json.loads(path.read_text()))
    out, complete = [], True
    for index, row in enumerate(settings()):
        n = grid_reps if row["kind"] == "grid" and grid_reps else reps_10 if row["seeds"] == 10 else reps
        key = json.dumps([n, seed, n_boot, index, row["kind"], row["seeds"], row["ratio"], row["truth"]], ensure_ascii=False)
        if key not in done:
            if index % shard[1] != shard[0]:
                complete = False
                continue
            done[key] = run_setting(row, n, seed, index, n_boot)
            if cache is not None:
                cache.write_text(json.dumps(done, ensure_ascii=False))
        out.append({**done[key], "wrong": row["wrong"]})
    return out, complete


def rate_text(row: dict, claim: str, verdict: str) -> str:
    """A verdict's rate with its Wilson 95% interval, in bold where it is an error for the setting's truth."""
    k, n = row["counts"][claim][verdict], row["reps"]
    low, high = wilson(k, n)
    text = f"{100 * k / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
    return f"**{text}**" if verdict in row["wrong"][claim] else text


def claim_rows(rows: list[dict], claim: str) -> list[dict]:
    return [r for r in rows if claim in r["wrong"]]


def table(rows: list[dict], claim: str, part: str) -> list[str]:
    """Every setting of a claim in a part (null or power): the rate of each verdict, errors in bold."""
    what = "planted c" if claim == "samples" else "planted slope"
    lines = [f"| seeds | seed noise / size effect | truth | {what} | replicated | not replicated | inconclusive |",
             "|---|---|---|---|---|---|---|"]
    for r in claim_rows(rows, claim):
        if r["part"] == part:
            planted = r["planted"] if claim == "samples" else r["a"] if claim == "data" else r["b"]
            lines.append(f"| {r['seeds']} | {r['ratio']} | {r['truth']} | {planted:+.3f} | "
                         + " | ".join(rate_text(r, claim, v) for v in VERDICTS) + " |")
    return lines


def worst_false(rows: list[dict], claim: str, seeds: int) -> tuple[float, float, str]:
    """The highest false rate of either verdict under the nulls, its Wilson upper end, and where it was."""
    best = (-1.0, 0.0, "")
    for r in claim_rows(rows, claim):
        if r["part"] == "null" and r["seeds"] == seeds:
            for v in r["wrong"][claim]:
                k = r["counts"][claim][v]
                if k / r["reps"] > best[0]:
                    best = (k / r["reps"], wilson(k, r["reps"])[1], f"\"{v}\", {r['truth']}, ratio {r['ratio'].split(':')[0]}")
    return best


def summary(rows: list[dict]) -> list[str]:
    lines = ["| claim | seeds | worst false rate under the nulls (where) | power: correct verdict at the planted effects |",
             "|---|---|---|---|"]
    for claim in ("samples", "data", "width"):
        for n in sorted({r["seeds"] for r in claim_rows(rows, claim)}):
            share, _, where = worst_false(rows, claim, n)
            power = []
            for r in claim_rows(rows, claim):
                if r["seeds"] == n and r["part"] != "null" and len(r["wrong"][claim]) == 1:
                    goal = "not replicated" if r["wrong"][claim] == ("replicated",) else "replicated"
                    noise = " (noise halved)" if r["part"] == "low noise" else ""
                    power.append(f"{r['truth']}{noise}: {goal} {100 * r['counts'][claim][goal] / r['reps']:.0f}%")
            lines.append(f"| {claim} | {n} | {100 * share:.1f}% ({where}) | {'; '.join(power)} |")
    return lines


def report(rows: list[dict], args: argparse.Namespace, command: str) -> str:
    cpu = sum(r["cpu_s"] for r in rows)
    reps = {(r["kind"], r["seeds"]): r["reps"] for r in rows}
    lines = [
        SECTION,
        "Measured by `benchmarks/crossed_claims_calibration.py` (this section is its output; the sections above come from "
        "`benchmarks/seed_rule_calibration.py`, which keeps this one when it rewrites the file). `samples_exponent` "
        "takes the batch sizes of the regime as its units (a t interval from the spread of their curves' shifts about "
        "the fitted clock); "
        "the grid's slopes draw the seeds once for every cell, crossed with each cell's wild bootstrap of its S(B) fit.",
        "",
        "```",
        command,
        "```",
        "",
        f"- date {dt.date.today().isoformat()}; Python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, pandas {pd.__version__}; {cpu:.0f} s of CPU summed over the settings; "
        + ", ".join(f"{kind} at {n} seeds: {k} simulated studies per setting" for (kind, n), k in sorted(reps.items()))
        + f"; the tests' own n_boot {args.n_boot} (the scorecard's default is 2000), level 0.95; seed {args.seed}; "
        "brackets: Wilson 95% intervals; errors in bold (at an edge both verdicts are)",
        f"- samples seen: log loss -{EXPONENT:g} log(B^c step) at 7 steps geometric from step {FIRST_STEP} to the end of a budget of {BUDGET} samples, "
        f"every batch size 1 .. 1024; per batch size an offset N(0, size SD) shared by its seeds, per run an offset and "
        f"per point noise, each N(0, seed SD / √2); one unit of SD {LOSS_UNIT:g} in log loss; the regime from the B_crit "
        f"fitted to simulated steps to target as in the section above (true B_crit {B_CRIT:g}: 6 batch sizes). The "
        f"planted effect is c; replicated means c within 1 ± δ = {1 - SAMPLES_TOL:g} .. {1 + SAMPLES_TOL:g}, and the edge "
        f"c = {1 - SAMPLES_TOL:g} is a null for both verdicts",
        f"- the grid: 3 x 3 cells, B_crit = {B_CRIT:g} x 4^(a i) x 2^(b j), i, j ∈ -1, 0, 1 (training-set size x 4 per "
        f"step, width x 2), steps to target as above per cell (one unit {STEPS_UNIT:g} in log steps), the effect per "
        f"(cell, batch size) independent between cells; tolerance on width ±{WIDTH_TOL:g}",
        "",
        *summary(rows),
        "",
    ]
    for claim, name in (("samples", "Samples seen set the loss (`samples_exponent`)"),
                        ("data", "B_crit grows with data (`log_slope_data`)"),
                        ("width", "B_crit flat in width (`log_slope_width`)")):
        lines += [f"### {name}: nulls", "", *table(rows, claim, "null"), "",
                  f"### {name}: power (seed noise / size effect {POWER_RATIO[0]})", "", *table(rows, claim, "power"), ""]
        if any(r["part"] == "low noise" for r in claim_rows(rows, claim)):
            lines += [f"### {name}: power with both noises halved (SD {LOSS_UNIT / 2:g} in log loss)", "",
                      *table(rows, claim, "low noise"), ""]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace the file's SECTION (from its heading to the end) with text, or append it."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    head = old.split(SECTION)[0].rstrip("\n")
    path.write_text((head + "\n\n" if head else "") + text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=100, help="simulated studies per setting at 5 seeds")
    p.add_argument("--reps-10", type=int, default=None, help="at 10 seeds (default: --reps)")
    p.add_argument("--grid-reps", type=int, default=None, help="simulated grids per setting (default: as the samples')")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path)
    p.add_argument("--read-cache", type=Path, action="append", default=[])
    p.add_argument("--shard", default="0/1")
    p.add_argument("--out", type=Path, help="write the section into this markdown file")
    args = p.parse_args(argv)
    reps_10 = args.reps if args.reps_10 is None else args.reps_10
    rows, complete = calibration_rows(args.reps, args.seed, args.n_boot, reps_10, args.cache, tuple(args.read_cache),
                                      tuple(int(x) for x in args.shard.split("/")), args.grid_reps)
    if not complete:
        print(f"{len(rows)} of {len(settings())} settings done", file=sys.stderr)
        return 3
    shown = list(argv if argv is not None else sys.argv[1:])
    skip = {"--cache", "--read-cache", "--shard"}
    kept = [a for i, a in enumerate(shown) if a not in skip and (i == 0 or shown[i - 1] not in skip)]
    text = report(rows, args, "python benchmarks/crossed_claims_calibration.py " + " ".join(kept))
    print(text)
    if args.out:
        write_section(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
