"""Throughput X(B) and memory per batch size on the device a study runs on, for the batch-size recommendation.

Throughput is measured warm and repeated: at each batch size one model (the study's, from seed 0) takes the
reference trainer's training step (`backward_in_parts`, then the optimizer), first `WARM_STEPS` untimed, then
`repeats` timed blocks of enough steps to last `block_s` seconds each. Nothing else (no loss checks, no
evaluation) is timed, unlike a run's own samples per second, which includes its logged checks.

Memory: on a GPU the allocator's peak during those steps, and whether the batch fit at all (an out-of-memory batch
size is recorded with the micro-batch it would need). On a CPU, where running out of memory kills the process
instead of raising, an estimate: the bytes the forward keeps for the backward (counted by a saved-tensors hook)
grow linearly with the batch; the parameters, their gradients and the optimizer's state are fixed; the largest
batch the available memory holds follows from the two.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from batchlab.config import Study
from batchlab.data import Dataset
from batchlab.nets.models import build_model
from batchlab.nets.objectives import sample_loss_for
from batchlab.seeding import derive_seed, numpy_rng
from batchlab.training.reference import backward_in_parts, make_optimizer
from batchlab.training.run import micro_batches
from batchlab.training.device import resolve_device
from batchlab.training.schedule import scaled_lr

WARM_STEPS = 3
OPTIMIZER_COPIES = {"adam": 2, "sgd": 1}  # state tensors per parameter: Adam's two moments, SGD's momentum


@dataclass(frozen=True)
class Clock:
    """Where the time comes from: wall time, with the device synchronised before each reading."""

    device: torch.device

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


def measure(study: Study, data: Dataset, batch_sizes: list[int], device: torch.device | str, repeats: int = 3,
            block_s: float = 0.25, max_steps: int = 200, clock: Clock | None = None) -> pd.DataFrame:
    """One row per (batch size, repeat): steps, seconds and samples per second of the training step alone, with the
    batch size's memory (peak on a GPU; on a CPU the saved-activation bytes the estimate rests on). On a CPU it runs
    on one thread, as a training job does; each batch size's median is written to stderr as it is measured."""
    device = resolve_device(device) if isinstance(device, str) else device
    if device.type == "cpu":
        torch.set_num_threads(1)
    clock = clock or Clock(device)
    x_all = torch.as_tensor(data.x, device=device)
    y_all = torch.as_tensor(data.labels[data.target], device=device)
    if study.is_classifier:
        y_all = y_all.long()
    train = torch.as_tensor(data.indices("train"), device=device)
    rows = []
    for b in batch_sizes:
        rows += (these := _batch_size_rows(study, data, x_all, y_all, train, b, device, repeats, block_s, max_steps, clock))
        speeds = sorted(r["samples_per_s"] for r in these)
        print(f"batchlab throughput: batch size {b}: {speeds[len(speeds) // 2]:,.0f} samples/s, from {speeds[0]:,.0f} to "
              f"{speeds[-1]:,.0f} over {len(speeds)} repeats" if these[0]["fits"] else f"batch size {b}: out of memory",
              file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def _batch_size_rows(study, data, x_all, y_all, train, b, device, repeats, block_s, max_steps, clock) -> list[dict]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(0, "init"))
        model = build_model(study.model, tuple(data.x.shape[1:]), data.n_classes()).to(device)
    model.train()
    loss_fn = sample_loss_for(study.model, derive_seed(0, "augment"))
    optimizer = make_optimizer(study, model.parameters(), scaled_lr(study.optim, b))
    parts = micro_batches(b, study.training.micro_batch_size)
    order = numpy_rng("throughput", b)
    fixed = _fixed_bytes(model, study.optim.name)
    base = {"batch_size": b, "device": _device_name(device), "torch_threads": torch.get_num_threads(),
            "fixed_mb": fixed / 2**20, "available_mb": available_memory_mb() if device.type == "cpu" else math.nan,
            "block_s": block_s, "warm_steps": WARM_STEPS}

    def step() -> None:
        idx = train[torch.as_tensor(order.integers(0, len(train), b), device=device)]
        optimizer.zero_grad(set_to_none=True)
        backward_in_parts(model, loss_fn, x_all[idx], y_all[idx], parts, study.training.precision)
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with _SavedBytes() as saved:
            step()
        start = clock.now()
        for _ in range(WARM_STEPS - 1):
            step()
        per_step = max((clock.now() - start) / max(WARM_STEPS - 1, 1), 1e-9)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return [{**base, "repeat": -1, "steps": 0, "seconds": math.nan, "samples_per_s": math.nan, "fits": False,
                 "peak_mb": math.nan, "activation_mb": math.nan}]
    steps = int(min(max_steps, max(1, math.ceil(block_s / per_step))))
    rows = []
    for r in range(repeats):
        start = clock.now()
        for _ in range(steps):
            step()
        seconds = clock.now() - start
        rows.append({**base, "repeat": r, "steps": steps, "seconds": seconds, "samples_per_s": steps * b / seconds,
                     "fits": True, "activation_mb": saved.bytes / 2**20,
                     "peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else math.nan})
    return rows


class _SavedBytes(torch.autograd.graph.saved_tensors_hooks):
    """Counts the bytes of the tensors the forward saves for the backward (each storage once)."""

    def __init__(self):
        self.bytes, self._seen = 0, set()

        def pack(t: torch.Tensor) -> torch.Tensor:
            key = (t.untyped_storage().data_ptr(), t.device)
            if key not in self._seen:
                self._seen.add(key)
                self.bytes += t.untyped_storage().nbytes()
            return t

        super().__init__(pack, lambda t: t)

    def __enter__(self) -> "_SavedBytes":
        super().__enter__()
        return self


def _fixed_bytes(model: nn.Module, optimizer: str) -> int:
    """Parameters, their gradients and the optimizer's state: memory that does not grow with the batch."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return params * (2 + OPTIMIZER_COPIES.get(optimizer, 2))


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def available_memory_mb() -> float:
    """Memory this machine has available now (Linux's MemAvailable), NaN where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan
