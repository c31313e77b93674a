"""The weight average and the recommendation's throughput measurement on a device, against the CPU.

Trains a small to-target study with `weight_averaging` in the batched engine on the device (CUDA graphs where
available) and in the reference trainer on the CPU: the runs should stop at the same logged steps, with validation
losses and kept weights equal to float32 rounding, and the engine's run table should say whether its steps were
captured. Then measures throughput and memory at a few batch sizes on the device (on a GPU the memory ceiling is
measured, not estimated).

    python benchmarks/averaging_device.py --device cuda [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from batchlab.analysis.recommend import memory_ceiling, summary
from batchlab.config import Study
from batchlab.data import make_dataset
from batchlab.training import throughput
from batchlab.training.engine import train_runs
from batchlab.training.reference import train_run
from batchlab.training.run import StopAt

STUDY = {
    "data": {"name": "synthetic_ehr", "n_samples": 600, "n_features": 64, "n_factors": 4},
    "model": {"kind": "dense_ae", "hidden": [64], "latent": 8},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [8],
    "seeds": [0, 1],
    "sharpness": {"samples": 0},
    "to_target": {"kind": "value", "value": 0.5, "cap": {"unit": "epochs", "amount": 3}, "checks": 40,
                  "weight_averaging": {"half_life": 0.1}},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json")
    args = ap.parse_args()
    device = torch.device(args.device)
    study = Study.model_validate(STUDY)
    view, data = study.to_target_view(), make_dataset(study.data)
    cpu = torch.device("cpu")
    probe = train_run(view, data, 8, 0, cpu, (1.0,), stop_at=StopAt(1e-9, average_half_life=0.1))
    losses = [r["val_loss"] for r in probe.curve]
    stop = StopAt((losses[0] + losses[-1]) / 2, average_half_life=0.1)
    runs = [(1e-3, 0), (1e-3, 1), (3e-3, 0)]
    refs = [train_run(view, data, 8, seed, cpu, (1.0,), base_lr=lr, stop_at=stop) for lr, seed in runs]
    got = train_runs(view, data, 8, runs, device, {0: (1.0,), 1: (1.0,)}, stop_at=stop)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "runs": []}
    ok = True
    for (lr, seed), ref, run in zip(runs, refs, got):
        gap = max(float((run.checkpoints[1.0][k].cpu() - ref.checkpoints[1.0][k]).abs().max()) for k in ref.checkpoints[1.0])
        same = run.record["steps"] == ref.record["steps"] and np.isclose(run.record["val_loss"], ref.record["val_loss"], rtol=1e-3)
        ok &= bool(same)
        report["runs"].append({"lr": lr, "seed": seed, "steps": [ref.record["steps"], run.record["steps"]],
                               "val_loss": [ref.record["val_loss"], run.record["val_loss"]], "max_weight_gap": gap,
                               "cuda_graph": run.record["cuda_graph"], "fallback": run.record["cuda_graph_fallback"]})
        print(f"lr {lr:g} seed {seed}: steps CPU {ref.record['steps']} / device {run.record['steps']}, val loss "
              f"{ref.record['val_loss']:.6g} / {run.record['val_loss']:.6g}, weights within {gap:.2g}, cuda_graph "
              f"{run.record['cuda_graph']} {run.record['cuda_graph_fallback']}")
    speed = throughput.measure(view, data, [8, 64, 512], device, block_s=0.5)
    report["throughput"] = summary(speed).to_dict("records")
    report["memory"] = memory_ceiling(speed, float(speed["available_mb"].iloc[0]), 512)
    print(summary(speed).to_string(index=False))
    print("memory:", report["memory"])
    report["ok"] = ok
    print("averaging on the device matches the CPU reference" if ok else "MISMATCH between device and CPU")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
