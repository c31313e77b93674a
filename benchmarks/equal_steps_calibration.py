"""Error rates of the equal-steps claim (batchlab.analysis.equal_steps.equal_steps_test), by simulation.

Two arms over the default arm's 5 batch sizes (32 to 512): the fixed-data sweep (2 seeds) and the equal-steps arm
(1 seed, as in the default config). Metric = slope x standardized log2 batch size + an effect per batch size, N(0, 1),
shared by its seeds + seed noise N(0, 0.3). Scenarios: no advantage in either arm (the null); the same advantage in
both (the advantage does not vanish: a "replicated" is false); an advantage only in the sweep, gone or reversed at
equal steps (power). Rates carry Wilson 95% intervals.

    python benchmarks/equal_steps_calibration.py --reps 1000 --seed 0
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from batchlab.analysis.equal_steps import equal_steps_test

SIZES = np.array([32, 64, 128, 256, 512])
SWEEP_SEEDS, ARM_SEEDS = 2, 1
SEED_SD = 0.3
ALPHA, MIN_EFFECT = 0.05, 0.5
VERDICTS = ("replicated", "not replicated", "inconclusive")
# (what is true, slope at equal epochs, slope at equal steps), slopes per SD of log2 batch size
SCENARIOS = [
    ("no advantage in either arm", 0.0, 0.0),
    ("the same advantage in both arms", 1.0, 1.0),
    ("the same advantage in both arms", 2.0, 2.0),
    ("the same advantage in both arms", 4.0, 4.0),
    ("advantage at equal epochs only", 1.0, 0.0),
    ("advantage at equal epochs only", 2.0, 0.0),
    ("advantage at equal epochs only", 4.0, 0.0),
    ("advantage at equal epochs, reversed at equal steps", 2.0, -2.0),
    ("advantage at equal epochs, reversed at equal steps", 4.0, -4.0),
]


def arm_table(slope: float, seeds: int, rng: np.random.Generator) -> pd.DataFrame:
    """One arm's runs: the planted trend, an effect per batch size shared by its seeds, and seed noise."""
    x = np.log2(SIZES)
    x = (x - x.mean()) / x.std()
    effect = rng.normal(size=len(SIZES))
    rows = [
        {"batch_size": int(b), "seed": s, "val_loss": slope * x[i] + effect[i] + SEED_SD * rng.normal()}
        for i, b in enumerate(SIZES) for s in range(seeds)
    ]
    return pd.DataFrame(rows)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial rate k / n (95% by default)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def calibration_rows(reps: int, seed: int) -> list[dict]:
    """Verdict counts per scenario over `reps` simulated pairs of arms."""
    rows = []
    for k, (truth, epochs_slope, steps_slope) in enumerate(SCENARIOS):
        rng = np.random.Generator(np.random.PCG64([seed, k]))
        counts = dict.fromkeys(VERDICTS, 0)
        for _ in range(reps):
            sweep, arm = arm_table(epochs_slope, SWEEP_SEEDS, rng), arm_table(steps_slope, ARM_SEEDS, rng)
            counts[equal_steps_test(sweep, arm, "val_loss", MIN_EFFECT, ALPHA)["verdict"]] += 1
        rows.append({"truth": truth, "epochs": epochs_slope, "steps": steps_slope, "reps": reps, **counts})
    return rows


def markdown(rows: list[dict]) -> str:
    """The rates as a markdown table."""
    lines = ["| truth | slope, equal epochs | slope, equal steps | reps | replicated | not replicated | inconclusive |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for v in VERDICTS:
            low, high = wilson(r[v], r["reps"])
            cells.append(f"{r[v] / r['reps']:.3f} [{low:.3f}, {high:.3f}]")
        lines.append(f"| {r['truth']} | {r['epochs']:g} | {r['steps']:g} | {r['reps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(markdown(calibration_rows(args.reps, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
