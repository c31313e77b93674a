"""Contrastive training throughput: the reference trainer (one seed after another) against the batched engine
(the seeds together, each drawing its own views), on config/paper.yaml's contrastive model.

The MNIST-1D contrastive encoder (channels 32, 64; latent 64; projection 32; temperature 0.2) trained for a
fixed number of steps per run at each batch size, K seeds. Printed per row: model-steps/s (optimizer steps
x runs per second of the runs' own training loops, `wall_time_s`), the engine's ratio to the reference,
whether its steps ran as CUDA graphs (contrastive steps do not, by design) and why not, and the largest
relative difference of the final validation losses between the two trainers.

    python benchmarks/contrastive_throughput.py --device cpu --batch-sizes 8 64 --runs 5
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

from batchlab.config import Study
from batchlab.data import make_dataset
from batchlab.training.engine import train_runs
from batchlab.training.device import resolve_device
from batchlab.training.reference import train_run

MODEL = {"kind": "contrastive", "channels": [32, 64], "latent": 64, "projection": 32, "temperature": 0.2}


def study(batch_size: int, steps: int, seeds: int, engine: str) -> Study:
    return Study.model_validate(
        {"data": {"name": "mnist1d", "n_samples": 4000}, "model": MODEL, "optim": {"name": "adam", "lr": 1e-3},
         "training": {"engine": engine}, "budget": {"unit": "steps", "amount": steps}, "batch_sizes": [batch_size],
         "seeds": list(range(seeds)), "curve_points": 5, "sharpness": {"samples": 0}}
    )


def row(batch_size: int, steps: int, k: int, device: torch.device, data) -> dict:
    runs = [(1e-3, seed) for seed in range(k)]
    reference = [train_run(study(batch_size, steps, k, "reference"), data, batch_size, seed, device, base_lr=lr)
                 for lr, seed in runs]
    batched = train_runs(study(batch_size, steps, k, "batched"), data, batch_size, runs, device, {})
    reference_s = sum(r.record["wall_time_s"] for r in reference)
    engine_s = batched[0].record["wall_time_s"]  # the loop the K runs shared
    diffs = [abs(b.record["val_loss"] - r.record["val_loss"]) / abs(r.record["val_loss"]) for b, r in zip(batched, reference)]
    return {
        "batch_size": batch_size, "runs": k, "steps": steps,
        "reference_model_steps_per_s": steps * k / reference_s, "engine_model_steps_per_s": steps * k / engine_s,
        "engine_vs_reference": reference_s / engine_s, "cuda_graph": batched[0].record["cuda_graph"],
        "cuda_graph_fallback": batched[0].record["cuda_graph_fallback"], "max_rel_val_loss_diff": max(diffs),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 64, 512])
    p.add_argument("--runs", type=int, default=5, help="K: seeds trained together (paper.yaml: 5)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps per run")
    p.add_argument("--json", help="also write the rows and the environment to this file")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    data = make_dataset(study(8, 1, 1, "reference").data)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"{name}, torch {torch.__version__}, K = {args.runs}, {args.steps} steps per run")
    print(f"{'B':>5} {'reference':>10} {'engine':>10} {'ratio':>6} {'graph':>6} {'val diff':>9}  fallback")
    rows = []
    for b in args.batch_sizes:
        r = row(b, args.steps, args.runs, device, data)
        rows.append(r)
        print(f"{b:5d} {r['reference_model_steps_per_s']:10,.0f} {r['engine_model_steps_per_s']:10,.0f} "
              f"{r['engine_vs_reference']:6.2f} {str(r['cuda_graph']):>6} {r['max_rel_val_loss_diff']:9.1e}  "
              f"{r['cuda_graph_fallback']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
