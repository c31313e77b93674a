"""The critical batch size's known answer, in numbers: the noisy quadratic model (Zhang et al.'s additive form, d 512,
power 0.8, sigma 2, target 1% of the initial excess loss) trained through the real trainer with the rate tuned per
batch size, against the exact tuned curve of its expected loss (batchlab.analysis.nqm). tests/test_nqm_critical.py
asserts the same within 1.5x; this prints the table docs/critical_batch.md records.

    python benchmarks/nqm_known_answer.py [--out DIR] [--device cuda] [--engine batched]

On a GPU (benchmarks/gpu_checks.sh) the batched engine trains each batch size's trials stacked and prunes them at
logged steps; the table should then agree with the CPU's to within the runs' own rounding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from batchlab.analysis import nqm
from batchlab.analysis.cbs import fit_steps_model, seed_mean_steps, steps_matrix, steps_table
from batchlab.config import Study
from batchlab.data import make_dataset, save_dataset
from batchlab.training.cell import train_cell
from batchlab.training.run import StopAt

SIZES = [2, 4, 8, 16, 32, 64, 128, 256]
D, POWER, SIGMA = 512, 0.8, 2.0


def study(target: float, engine: str = "auto") -> Study:
    """The NQM study of tests/test_nqm_critical.py: tuned SGD without momentum, sqrt-centred grid 2**0.5 apart."""
    return Study.model_validate({
        "data": {"name": "noisy_quadratic", "n_features": D, "power": POWER, "noise": SIGMA, "n_samples": 48000},
        "model": {"kind": "quadratic", "power": POWER},
        "optim": {"name": "sgd", "momentum": 0.0, "lr": 1.4, "lr_rule": "fixed", "base_batch_size": 16},
        "budget": {"unit": "epochs", "amount": 1},
        "batch_sizes": SIZES,
        "seeds": [0, 1],
        "sharpness": {"samples": 0},
        "training": {"engine": engine},
        "to_target": {"kind": "value", "value": target, "cap": {"unit": "epochs", "amount": 2}, "checks": 400,
                      "seeds": [0, 1], "gradient_seeds": 2,
                      "lr_tuning": {"points": 3, "factor": 2**0.5, "rule": "sqrt", "extensions": 6,
                                    "tuning_seeds": [100]}},
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="keep the cells here (default: a scratch folder)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--engine", default="auto", choices=["auto", "reference", "batched"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    h = nqm.spectrum(D, POWER)
    m0 = nqm.initial_error(h, 1.0)
    target = float(nqm.expected_loss(h, 0.01 * m0, SIGMA**2))
    spec = study(target, args.engine)
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        save_dataset(make_dataset(spec.data), out / "nqm.npz")
        view, curves, rates = spec.to_target_view(), [], {}
        for b in SIZES:
            runs = train_cell(view, "nqm", b, out / "nqm.npz", out / f"bs{b}", device=args.device, stop_at=StopAt(target),
                              lr_tuning=spec.to_target.lr_tuning)
            rates[b] = (float(runs["lr"].iloc[0]), str(runs["lr_note"].iloc[0]))
            curves.append(pd.read_parquet(out / f"bs{b}" / "curves.parquet"))
        sizes, seeds, grid = steps_matrix(steps_table(pd.concat(curves), "val_loss", target))
        measured = seed_mean_steps(grid, np.arange(len(seeds)))
    exact, exact_lr = nqm.tuned_steps_to_target(h, m0, SIGMA**2, np.array(SIZES), target, 4000)
    fit, exact_fit = fit_steps_model(sizes, measured), fit_steps_model(SIZES, exact)
    print(f"device {args.device}, engine {args.engine}; target {target:.6g}; | B | measured steps (mean of 2 seeds) | exact tuned steps | tuned rate | exact rate |")
    for b, m, e, lr in zip(SIZES, measured, exact, exact_lr):
        note = f" ({rates[b][1]})" if rates[b][1] else ""
        print(f"| {b} | {m:.1f} | {e:.0f} | {rates[b][0]:.3g}{note} | {lr:.3g} |")
    print(f"B_crit measured {fit.b_crit:.2f}, exact {exact_fit.b_crit:.2f} (ratio {fit.b_crit / exact_fit.b_crit:.2f}); "
          f"S_min measured {fit.s_min:.1f}, exact {exact_fit.s_min:.1f}")


if __name__ == "__main__":
    sys.exit(main())
