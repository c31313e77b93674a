"""Error rates of the spread-knee test (batchlab.analysis.spread_shape.flattening_test), by simulation.

Tables of log spread over 11 batch sizes (1 to 1024) and 3 seeds, Gaussian noise of SD 0.02, 0.05 and 0.1
per run, drawn from (i) straight power laws (slopes -0.5 and -0.3): the rate of a false "replicated";
(ii) knees where the spread falls at slope -T and then stays level (T from 0.2 to 0.8, the knee at B = 64 or
at B = 512, the last doubling as in Vaessen & van Leeuwen 2024): the rate of "replicated" (power) and the
smallest T detected in 80% of tables; (iii) the same knees: the rate of a false "not replicated" (for
T < min_effect the test is meant to say "not replicated"). Rates carry Wilson 95% intervals.

With --design arm, the default config's equal-steps arm instead: 5 batch sizes (32 to 512), one seed, knees at
B = 64 and 256 (the last doubling level), the noise estimated from the broken stick's residuals alone; with
--design paper_arm, config/paper.yaml's: 7 batch sizes (16 to 1024), 3 seeds, knees at 64 and 512.

    python benchmarks/spread_shape_calibration.py --reps 200 --seed 0 [--design arm]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from batchlab.analysis.spread_shape import flattening_test

SDS = (0.02, 0.05, 0.1)
NULL_SLOPES = (-0.5, -0.3)
KNEE_T = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
DESIGNS = {  # batch sizes, seeds, knees
    "sweep": (2.0 ** np.arange(11), 3, (64.0, 512.0)),
    "arm": (2.0 ** np.arange(5, 10), 1, (64.0, 256.0)),  # config/config.yaml's equal-steps arm
    "paper_arm": (2.0 ** np.arange(4, 11), 3, (64.0, 512.0)),  # config/paper.yaml's
}
DESIGN_WORDS = {
    "sweep": "11 batch sizes (1–1024), 3 seeds",
    "arm": "the default equal-steps arm's 5 batch sizes (32–512), 1 seed (the noise from the residuals alone)",
    "paper_arm": "config/paper.yaml's equal-steps arm, 7 batch sizes (16–1024), 3 seeds",
}
SIZES, SEEDS, KNEES = DESIGNS["sweep"]
VERDICTS = ("replicated", "not replicated", "inconclusive")


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial rate k / n (95% by default)."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _curve(slope_before: float, slope_after: float, knee: float | None, sizes: np.ndarray = SIZES) -> np.ndarray:
    x = np.log(sizes)
    if knee is None:
        return slope_before * x
    k = math.log(knee)
    return slope_before * np.minimum(x - k, 0) + slope_after * np.maximum(x - k, 0)


def _scenarios(knees=KNEES) -> list[dict]:
    rows = [{"truth": "straight", "slope_before": s, "slope_after": s, "T": 0.0, "knee": None, "sd": sd}
            for s in NULL_SLOPES for sd in SDS]
    rows += [{"truth": "knee", "slope_before": -t, "slope_after": 0.0, "T": t, "knee": knee, "sd": sd}
             for knee in knees for sd in SDS for t in KNEE_T]
    return rows


def calibration_rows(reps: int = 200, seed: int = 0, n_sim: int = 2000, design: str = "sweep") -> list[dict]:
    """One row per scenario: its truth, and how often each verdict came out of `reps` simulated tables."""
    sizes, seeds, knees = DESIGNS[design]
    out = []
    scenarios = _scenarios(knees)
    for scenario, ss in zip(scenarios, np.random.SeedSequence(seed).spawn(len(scenarios))):
        rng = np.random.Generator(np.random.PCG64(ss))
        mean = _curve(scenario["slope_before"], scenario["slope_after"], scenario["knee"], sizes)
        counts = dict.fromkeys(VERDICTS, 0)
        for rep in range(reps):
            table = mean[:, None] + scenario["sd"] * rng.standard_normal((len(sizes), seeds))
            counts[flattening_test(sizes, table, n_sim=n_sim, seed=int(rng.integers(2**32)))["verdict"]] += 1
        row = {**scenario, "reps": reps}
        for verdict in VERDICTS:
            key = verdict.replace(" ", "_")
            low, high = wilson(counts[verdict], reps)
            row[key] = counts[verdict] / reps
            row[f"{key}_low"], row[f"{key}_high"] = low, high
        out.append(row)
    return out


def smallest_detected(rows: list[dict], power: float = 0.8) -> dict[tuple[float, float], float]:
    """Per (knee, sd): the smallest planted T whose "replicated" rate reaches `power` (NaN if none does)."""
    found: dict[tuple[float, float], float] = {}
    for row in rows:
        if row["truth"] == "knee":
            key = (row["knee"], row["sd"])
            hit = row["replicated"] >= power
            found[key] = min(found.get(key, math.inf), row["T"] if hit else math.inf)
    return {k: (v if math.isfinite(v) else math.nan) for k, v in found.items()}


def _rate(row: dict, key: str) -> str:
    return f"{row[key]:.3f} [{row[key + '_low']:.3f}, {row[key + '_high']:.3f}]"


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table, then the smallest T detected 80% of the time."""
    lines = [
        "| truth | slope before | slope after | T | knee B | run SD | reps | replicated | not replicated | inconclusive |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        knee = "-" if r["knee"] is None else f"{r['knee']:g}"
        lines.append(
            f"| {r['truth']} | {r['slope_before']:g} | {r['slope_after']:g} | {r['T']:g} | {knee} | {r['sd']:g} | "
            f"{r['reps']} | {_rate(r, 'replicated')} | {_rate(r, 'not_replicated')} | {_rate(r, 'inconclusive')} |"
        )
    lines += ["", "| knee B | run SD | smallest T replicated in ≥ 80% |", "|---|---|---|"]
    for (knee, sd), t in smallest_detected(rows).items():
        lines.append(f"| {knee:g} | {sd:g} | {'none up to ' + format(max(KNEE_T), 'g') if math.isnan(t) else format(t, 'g')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200, help="simulated tables per scenario")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-sim", type=int, default=2000, help="simulations inside each test")
    p.add_argument("--design", choices=sorted(DESIGNS), default="sweep",
                   help="; ".join(f"{k}: {v}" for k, v in DESIGN_WORDS.items()))
    args = p.parse_args(argv)
    print(markdown(calibration_rows(args.reps, args.seed, args.n_sim, args.design)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
