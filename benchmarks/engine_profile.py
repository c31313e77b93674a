"""Where one step of the batched engine spends its device time: its kernels, by total time, on a GPU.

The step is the benchmark's autoencoder (benchmarks/train_throughput.py) with Adam, K runs at batch size
B, run eagerly on the device under torch.profiler after warm-up steps (a CUDA graph replays the same
kernels without the launch gaps). Printed: the kernels' summed device time per step against the step's
wall time as a graph, and the kernels that take most of it, with their count per step. The bytes-moved
bound of benchmarks/train_throughput.py says how far each is from the copy bandwidth.

    python benchmarks/engine_profile.py --runs 256 --batch-size 1 [--steps 20] [--top 15] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import make_data, make_study  # noqa: E402

from batchlab.training.engine import _Training  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=20, help="profiled steps")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--device", default="cuda", help="cuda; cpu profiles the ops' own CPU time instead (a dry run)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    study = make_study(args.steps + 40, "fp32", args.batch_size)
    runs = [(1e-3, seed) for seed in range(args.runs)]
    training = _Training(study, make_data(), args.batch_size, runs, device, {})
    step = training.step_fn
    go = lambda i: step.step(i, training.x_train, training.y_train, training.stream, False)  # noqa: E731
    for i in range(1, 11):  # warm-up, graph captured
        go(i)
    sync()
    start = time.perf_counter()
    for i in range(11, 31):
        go(i)
    sync()
    graph_step_ms = (time.perf_counter() - start) / 20 * 1e3

    step.graphs_wanted = False  # the same kernels, launched one by one, so the profiler sees each
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for i in range(31, 31 + args.steps):
            go(i)
        sync()
    kind = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    kernels: dict[str, list[float]] = {}
    for e in prof.events():
        if e.device_type == kind:
            kernels.setdefault(e.name, []).append(e.device_time_total if cuda else e.self_cpu_time_total)
    rows = sorted(((sum(t) / args.steps / 1e3, len(t) / args.steps, name) for name, t in kernels.items()), reverse=True)
    total = sum(r[0] for r in rows)
    print(f"{torch.cuda.get_device_name(device) if cuda else 'CPU'}, torch {torch.__version__}; K = {args.runs}, B = {args.batch_size}, "
          f"{training.probe.__class__.__name__}, Adam, fp32")
    print(f"step{' as a CUDA graph' if cuda else ''}: {graph_step_ms:.3f} ms; {'kernels' if cuda else 'ops'}' time per step: {total:.3f} ms "
          f"in {sum(r[1] for r in rows):.0f} kernels")
    print(f"{'ms/step':>8} {'share':>6} {'count':>5}  kernel")
    for ms, count, name in rows[: args.top]:
        print(f"{ms:8.3f} {100 * ms / total:5.1f}% {count:5.1f}  {name[:110]}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"runs": args.runs, "batch_size": args.batch_size, "graph_step_ms": graph_step_ms, "kernel_ms": total,
             "kernels": [{"ms": ms, "count": c, "name": n} for ms, c, n in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
