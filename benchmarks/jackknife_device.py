"""B_simple and its jackknife on the GPU against the CPU: the same examples and weights, the statistics within float64
rounding of the float32 per-example gradients, and the time of each (docs/benchmarks.md).

    python benchmarks/jackknife_device.py --device cuda [--samples 1024] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from batchlab.config import load_config
from batchlab.data import make_dataset
from batchlab.measure.gradients import per_example_stats
from batchlab.nets.models import build_model
from batchlab.nets.objectives import sample_loss_for


def measure(study, data, device: torch.device, n: int) -> dict:
    """per_example_stats of the study's freshly built model (seed 0) on its first n training examples."""
    torch.manual_seed(0)
    model = build_model(study.model, tuple(data.x.shape[1:]), data.n_classes()).to(device).eval()
    idx = data.indices("train")[:n]
    x = torch.as_tensor(data.x[idx], device=device)
    y = torch.as_tensor(data.labels[data.target][idx], device=device)
    loss = sample_loss_for(study.model, 0)
    per_example_stats(model, loss, x[:64], y[:64])  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    stats = per_example_stats(model, loss, x, y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"device": device.type, "b_simple": stats.b_simple, "log_se": stats.jackknife.log_se,
            "groups": stats.jackknife.groups, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    study = load_config("config/config.yaml").studies["ehr_autoencoder"]
    data = make_dataset(study.data)
    rows = [measure(study, data, torch.device("cpu"), args.samples), measure(study, data, torch.device(args.device), args.samples)]
    for row in rows:
        print(f"{row['device']}: B_simple {row['b_simple']:.6g}, jackknife SE of log {row['log_se']:.6g} "
              f"({row['groups']} groups), {row['seconds']:.3f} s")
    cpu, dev = rows
    agree = abs(dev["b_simple"] / cpu["b_simple"] - 1) < 1e-4 and abs(dev["log_se"] / cpu["log_se"] - 1) < 1e-3
    print(f"agree within float32 gradient rounding: {agree}; speed-up {cpu['seconds'] / dev['seconds']:.3g}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "agree": agree}, f, indent=1)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
