"""The stacked optimizer update alone, three ways: the per-op functional update (what the engine's
graph captured before fusing), torch's fused kernel (`stacked_optim.fused_update_`, what it runs now)
and `torch.compile` of the per-op update, side by side in one run.

K runs of the 784-256-32-256-784 autoencoder's parameters, Adam, random gradients; per variant the
median time of an update over repeats, the bytes it must move at least (it reads weights, gradients and both
moments and writes weights and moments: 28 bytes per parameter) over that time, and the ratio to the
fused kernel.

    python benchmarks/optimizer_update.py --device cuda --runs 64 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from batchlab.training import stacked_optim
from batchlab.config import Optim
from batchlab.training.device import resolve_device

SHAPES = [(256, 784), (256,), (32, 256), (32,), (256, 32), (256,), (784, 256), (784,)]
BYTES_PER_PARAM = 28  # the update reads weights, gradients and both moments, and writes weights and moments


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, repeats: int) -> float:
    for _ in range(3):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(device, k: int, repeats: int, compile_: bool) -> list[dict]:
    optim = Optim.model_validate({"name": "adam", "lr": 1e-3})
    gen = torch.Generator().manual_seed(0)
    params = {f"p{i}": torch.randn(k, *s, generator=gen).to(device) for i, s in enumerate(SHAPES)}
    grads = {n: torch.randn(p.shape, generator=gen).to(device) * 1e-2 for n, p in params.items()}
    state = stacked_optim.init_state(optim, params)
    step = torch.tensor(10, device=device)
    lr = torch.full((k,), 1e-3, dtype=torch.float64, device=device)
    table = stacked_optim.bias_correction_table(device)
    groups = stacked_optim.equal_runs([1e-3] * k)
    n_params = sum(p.numel() for p in params.values())

    def per_op():
        new_p, new_s = stacked_optim.update(optim, params, grads, state, step, lr, table)
        for n in params:  # the in-place commit the captured graph did
            params[n].copy_(new_p[n])
            state["exp_avg"][n].copy_(new_s["exp_avg"][n])
            state["exp_avg_sq"][n].copy_(new_s["exp_avg_sq"][n])

    variants = {"per-op": per_op, "fused": lambda: stacked_optim.fused_update_(optim, params, grads, state, step, lr, groups)}
    if compile_:
        def in_place(p, g, s, st, rate):
            stacked_optim.update(optim, p, g, s, st, rate, table, in_place=True)

        compiled = torch.compile(in_place)
        variants["compiled"] = lambda: compiled(params, grads, state, step, lr)
    rows = []
    for name, fn in variants.items():
        try:
            seconds = _time(fn, device, repeats)
        except Exception as err:  # noqa: BLE001 - a variant that fails to build is reported, not fatal
            rows.append({"runs": k, "variant": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"})
            print(f"K={k:4d} {name:9s} failed: {rows[-1]['error']}", flush=True)
            continue
        rows.append({"runs": k, "variant": name, "us_per_update": seconds * 1e6,
                     "gb_per_s": n_params * BYTES_PER_PARAM / seconds / 1e9})
    fused = next((r["us_per_update"] for r in rows if r["variant"] == "fused"), None)
    for r in rows:
        if "us_per_update" in r:
            r["vs_fused"] = fused / r["us_per_update"] if fused else float("nan")
            print(f"K={k:4d} {r['variant']:9s} {r['us_per_update']:10.1f} us  {r['gb_per_s']:8.1f} GB/s  "
                  f"{r['vs_fused']:5.2f}x the fused kernel's speed", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--runs", type=int, nargs="+", default=[64])
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    rows = [r for k in args.runs for r in measure(device, k, args.repeats, not args.no_compile)]
    if args.json:
        env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__}
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
