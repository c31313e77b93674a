"""Sharpness (Lanczos, batchlab.measure.geometry) on a device against the same computation on the CPU.

Least squares has a known Hessian, 2 XᵀX / n, so its largest eigenvalue is computed exactly with numpy; a dense
autoencoder has none, so the device's value is compared with the CPU's. Prints both, the iterations, whether
each converged and the seconds each took (device time synchronised).

    python benchmarks/sharpness_device.py --device cuda [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from batchlab.measure.geometry import top_hessian_eigenvalue


def squared_error(model, x, y):
    return ((model(x) - y) ** 2).flatten(1).sum(1)


def timed(model, x, y, device: torch.device) -> dict:
    model, x, y = model.to(device), x.to(device), y.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    top = top_hessian_eigenvalue(model, squared_error, x, y, iters=50, tol=1e-6, seed=0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"eigenvalue": top.eigenvalue, "iters": top.iters, "converged": top.converged,
            "seconds": time.perf_counter() - start}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--json")
    args = p.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 64, generator=gen)
    y = torch.randn(512, 1, generator=gen)
    linear = nn.Linear(64, 1, bias=False)
    xs = x.double().numpy()
    exact = float(np.linalg.eigvalsh(2 * xs.T @ xs / len(xs))[-1])
    torch.manual_seed(0)
    ae = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 8), nn.Tanh(), nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 64))
    results = {
        "least_squares": {"exact": exact, "cpu": timed(linear, x, y, torch.device("cpu")),
                          args.device: timed(linear, x, y, device)},
        "dense_ae": {"cpu": timed(ae, x, x, torch.device("cpu")), args.device: timed(ae, x, x, device)},
    }
    ls, dae = results["least_squares"], results["dense_ae"]
    results["least_squares_rel_error"] = abs(ls[args.device]["eigenvalue"] - exact) / exact
    results["dense_ae_rel_difference"] = abs(dae[args.device]["eigenvalue"] - dae["cpu"]["eigenvalue"]) / abs(dae["cpu"]["eigenvalue"])
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
