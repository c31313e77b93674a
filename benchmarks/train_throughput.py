"""Training throughput: a plain eager PyTorch loop, the reference trainer, the batched engine, and a
hand-written stacked-bmm reference.

The MLP autoencoder 784-256-32-256-784 with Adam on synthetic data (made here, nothing downloaded),
at batch sizes 1, 8, 64, 1024 and K = 1, 8, 64, 256 runs trained together by the engine. The eager
loop and the reference trainer train one run; K of them take K times as long, so their model-steps/s
is what K of them give one after another. The hand-written rows train the same K models as plain
stacked `baddbmm` weights with `torch.optim.Adam(capturable=True, foreach=True)`, the whole step one
CUDA graph on a GPU: what the engine should reach without its generality. Printed per row:
model-steps/s (steps x runs per second), samples/s, the ratio to the eager loop, whether the steps
ran as a CUDA graph, peak memory, and the fraction of the bandwidth limit (the bytes one Adam step
must move over the device's measured copy bandwidth).

    python benchmarks/train_throughput.py --device cuda --precision fp32 bf16 --json gpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

from batchlab.config import Study
from batchlab.data import Dataset
from batchlab.training.engine import train_runs
from batchlab.nets.models import count_parameters
from batchlab.nets.objectives import sample_loss_for
from batchlab.training.run import autocast, init_model, peak_memory_mb
from batchlab.training.device import resolve_device
from batchlab.training.reference import train_run

N_TRAIN, N_EVAL, FEATURES = 2048, 64, 784
BYTES_PER_PARAM = 8 * 4  # fp32: weights read + write, gradient write + read, Adam's two moments read + write
LR = 1e-3


def make_data() -> Dataset:
    """Synthetic binary 784-feature vectors (MNIST-sized), split train / val / test."""
    rng = np.random.default_rng(0)
    n = N_TRAIN + 2 * N_EVAL
    x = (rng.random((n, FEATURES)) < 0.2).astype(np.float32)
    split = np.repeat(np.array([0, 1, 2], dtype=np.int8), [N_TRAIN, N_EVAL, N_EVAL])
    y = rng.integers(0, 2, n)
    return Dataset(x, {"label": y}, {"label": "classification"}, "label", split, "synthetic", True, "benchmark")


def make_study(steps: int, precision: str, batch_size: int) -> Study:
    """The autoencoder study of one row: a fixed number of steps, no sharpness, two curve points."""
    n = N_TRAIN + 2 * N_EVAL
    return Study.model_validate(
        {
            "data": {"name": "synthetic_ehr", "n_samples": n, "n_features": FEATURES,
                     "split": {"val_fraction": N_EVAL / n, "test_fraction": N_EVAL / n}},
            "model": {"kind": "dense_ae", "hidden": [256], "latent": 32},
            "optim": {"name": "adam", "lr": LR},
            "budget": {"unit": "steps", "amount": steps},
            "batch_sizes": [batch_size], "seeds": [0], "curve_points": 2, "eval_batch_size": 1024,
            "sharpness": {"samples": 0}, "training": {"precision": precision},
        }
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def eager_loop(study: Study, data: Dataset, batch_size: int, steps: int, device: torch.device) -> float:
    """Seconds for `steps` steps of a plain nn.Module + torch.optim.Adam loop (no per-step .item())."""
    model = init_model(study, data, 0).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = sample_loss_for(study.model)
    x = torch.as_tensor(data.x[:N_TRAIN], device=device)
    idx = torch.randint(0, N_TRAIN, (steps + 5, batch_size), generator=torch.Generator().manual_seed(0)).to(device)
    total = torch.zeros((), device=device)

    def step(i: int) -> None:
        with autocast(device, study.training.precision):
            loss = loss_fn(model, x[idx[i]], None).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total.add_(loss.detach())

    for i in range(5):  # warm-up
        step(i)
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(5 + i)
    sync(device)
    return time.perf_counter() - start


def reference(study, data, batch_size, device) -> float:
    """The loop time of train_run (its record's wall time: training, plus two cheap curve points)."""
    return train_run(study, data, batch_size, 0, device).record["wall_time_s"]


def engine(study, data, batch_size, device, k: int) -> tuple[float, str]:
    """The loop time of train_runs for K runs, and whether its steps ran as a CUDA graph."""
    runs = [(LR, seed) for seed in range(k)]
    record = train_runs(study, data, batch_size, runs, device, {})[0].record
    graph = {None: "n/a", True: "graph"}.get(record["cuda_graph"], "eager: " + record["cuda_graph_fallback"])
    return record["wall_time_s"], graph


def handwritten(data: Dataset, batch_size: int, k: int, steps: int, device: torch.device, precision: str) -> float:
    """Seconds for `steps` steps of K autoencoders as stacked baddbmm weights (784-256-32-256-784, ReLU
    after the first layer of encoder and decoder, logits out), Adam(capturable, foreach) over the stacks,
    batches drawn on the device; on a GPU the whole step is one CUDA graph."""
    gen = torch.Generator().manual_seed(0)
    widths = [FEATURES, 256, 32, 256, FEATURES]
    weights = [(torch.randn(k, a, b, generator=gen) / a**0.5).to(device).requires_grad_() for a, b in zip(widths, widths[1:])]
    biases = [torch.zeros(k, 1, b, device=device, requires_grad=True) for b in widths[1:]]
    cuda = device.type == "cuda"
    opt = torch.optim.Adam(weights + biases, lr=LR, capturable=cuda, foreach=True)
    x_train = torch.as_tensor(data.x[:N_TRAIN], device=device)
    order = torch.randint(0, N_TRAIN, (steps + 8, k * batch_size), generator=gen).to(device)
    at = torch.zeros(1, dtype=torch.int64, device=device)

    def step() -> None:
        x = x_train.index_select(0, order.index_select(0, at).view(-1)).view(k, batch_size, FEATURES)
        with autocast(device, precision):
            h = x
            for i, (w, b) in enumerate(zip(weights, biases)):
                h = torch.baddbmm(b, h, w)
                h = torch.relu(h) if i in (0, 2) else h
            loss = F.binary_cross_entropy_with_logits(h.float(), x, reduction="none").mean(dim=(1, 2)).sum()
        loss.backward()
        opt.step()
        at.add_(1)

    if cuda:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                step()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            step()
        run = graph.replay
    else:
        def run() -> None:
            opt.zero_grad(set_to_none=True)
            step()
        for _ in range(3):
            run()
    at.zero_()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        run()
    sync(device)
    return time.perf_counter() - start


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second of a large device-to-device copy (read + write counted)."""
    n = (256 if device.type == "cuda" else 64) * 2**20 // 4
    src, dst = torch.ones(n, device=device), torch.empty(n, device=device)
    dst.copy_(src)
    sync(device)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n * 4 / best


def steps_for(args, device, k: int, batch_size: int) -> int:
    """Timed steps of one row: --steps, fewer on CPU where the row would otherwise take long."""
    if args.max_samples is None:
        return args.steps
    return max(3, min(args.steps, args.max_samples // (k * batch_size)))


def measure(args, device, data, n_params, bandwidth) -> list[dict]:
    rows = []
    cuda = device.type == "cuda"
    trainers = [("eager", 1), ("reference", 1)] + [("engine", k) for k in args.runs]
    trainers += [("handwritten", k) for k in args.handwritten]
    for precision in args.precision:
        for b in args.batch_sizes:
            base = None
            for kind, k in trainers:
                steps = steps_for(args, device, k, b)
                study = make_study(steps, precision, b)
                warm = make_study(3, precision, b)
                reset_peak(device)
                graph = "n/a" if not cuda else "eager"
                if kind == "eager":
                    seconds = eager_loop(study, data, b, steps, device)
                elif kind == "reference":
                    reference(warm, data, b, device)
                    seconds = reference(study, data, b, device)
                elif kind == "engine":
                    engine(warm, data, b, device, k)
                    seconds, graph = engine(study, data, b, device, k)
                else:
                    seconds = handwritten(data, b, k, steps, device, precision)
                    graph = "graph" if cuda else "n/a"
                model_steps = steps * k / seconds
                base = base or model_steps
                moved = model_steps * n_params * BYTES_PER_PARAM
                rows.append(
                    {
                        "precision": precision, "batch_size": b, "trainer": kind, "runs": k, "steps": steps,
                        "model_steps_per_s": model_steps, "samples_per_s": model_steps * b,
                        "vs_eager": model_steps / base, "cuda_graph": graph, "peak_mem_mb": peak_memory_mb(device)[0],
                        "bandwidth_fraction": moved / bandwidth,
                    }
                )
                print(format_row(rows[-1]), flush=True)
    return rows


HEADER = (
    f"{'prec':5} {'B':>5} {'trainer':11} {'K':>3} {'steps':>6} {'model-steps/s':>14} {'samples/s':>12} "
    f"{'vs eager':>9} {'graph':>6} {'peak MB':>9} {'of BW':>7}"
)


def format_row(r: dict) -> str:
    return (
        f"{r['precision']:5} {r['batch_size']:>5} {r['trainer']:11} {r['runs']:>3} {r['steps']:>6} "
        f"{r['model_steps_per_s']:>14,.1f} {r['samples_per_s']:>12,.0f} {r['vs_eager']:>9.2f} {r['cuda_graph'][:6]:>6} "
        f"{r['peak_mem_mb']:>9,.0f} {100 * r['bandwidth_fraction']:>6.2f}%"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default: 200 on CPU, 1000 on GPU)")
    p.add_argument("--max-samples", type=int, default=None,
                   help="cap steps x runs x batch per row (default on CPU: 40000; none on GPU)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 64, 1024])
    p.add_argument("--runs", type=int, nargs="+", default=[1, 8, 64, 256], help="K of the engine rows")
    p.add_argument("--handwritten", type=int, nargs="*", default=[64, 256], help="K of the hand-written rows")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    p.add_argument("--json", help="also write the rows and the environment to this file")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cpu = device.type == "cpu"
    args.steps = args.steps or (200 if cpu else 1000)
    if args.max_samples is None and cpu:
        args.max_samples = 40_000
    torch.use_deterministic_algorithms(True, warn_only=not cpu)
    data = make_data()
    n_params = count_parameters(init_model(make_study(1, "fp32", 1), data, 0))
    bandwidth = copy_bandwidth(device)
    env = {
        "device": torch.cuda.get_device_name(device) if not cpu else platform.processor() or "cpu",
        "torch": torch.__version__, "python": sys.version.split()[0], "threads": torch.get_num_threads(),
        "params": n_params, "copy_bandwidth_gb_s": bandwidth / 1e9, "bytes_per_param_step": BYTES_PER_PARAM,
    }
    print(json.dumps(env))
    print(HEADER, flush=True)
    rows = measure(args, device, data, n_params, bandwidth)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
