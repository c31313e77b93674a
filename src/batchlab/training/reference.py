"""The reference trainer: one run, read top to bottom; the specification of training.

A run is (study, batch size, learning rate, seed). Its weights are initialised from the seed
alone and it reads the training set as one seeded stream of epoch permutations, cut into
batches; so for a given seed every batch size starts from the same weights and sees the same
samples in the same order: a paired comparison in which only the batch size differs. What a run is
(its stream, initial weights, log steps, measurements) lives in batchlab.training.run, shared with the engine.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from typing import Callable

import torch
from torch import Tensor, nn

from batchlab.training import averaging
from batchlab.training.adam import Adam
from batchlab.config import Study
from batchlab.nets.contrastive import InfoNCELoss
from batchlab.data import Dataset
from batchlab.nets.objectives import SampleLoss, sample_loss_for
from batchlab.training.resume import ResumePoint
from batchlab.training.run import (
    RunFacts, RunResult, StopAt, autocast, init_model, log_spaced_steps, mean_loss, measure_run, micro_batch_columns,
    micro_batches, sample_stream,
)
from batchlab.training.schedule import lr_at, scaled_lr, warmup_steps
from batchlab.seeding import derive_seed, numpy_rng


def make_optimizer(study: Study, params, lr: float) -> torch.optim.Optimizer:
    """torch.optim's Adam (batchlab.training.adam: the same bits, faster on a CPU when gradients are sparse) or SGD."""
    o = study.optim
    if o.name == "adam":
        return Adam(params, lr=lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=o.momentum, weight_decay=o.weight_decay)


class Progress:
    """Writes step, samples/s and time left to a stream every `every` seconds, for `tail -f` on the log."""

    def __init__(self, label: str, total: int, batch_size: int, every: float = 10.0, stream=sys.stderr):
        self.label, self.total, self.batch_size, self.every, self.stream = label, total, batch_size, every, stream
        self.start = self.last = time.perf_counter()

    def __call__(self, step: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and step != self.total:
            return
        self.last = now
        rate = step / max(now - self.start, 1e-9)
        left = (self.total - step) / rate if rate > 0 else math.inf
        print(
            f"[{self.label}] step {step}/{self.total} ({100 * step / self.total:.0f}%)"
            f"  {rate * self.batch_size:,.0f} samples/s  {left:,.0f} s left",
            file=self.stream,
            flush=True,
        )


def train_run(
    study: Study,
    data: Dataset,
    batch_size: int,
    seed: int,
    device: torch.device,
    checkpoint_fractions: tuple[float, ...] = (),
    progress: Callable[[int], None] | None = None,
    resume: ResumePoint | None = None,
    base_lr: float | None = None,
    stop_at: StopAt | None = None,
) -> RunResult:
    """Train one autoencoder run and measure it (see the module docstring for the design).

    With `stop_at`, the run stops at the first logged step where its validation loss reaches the target,
    and its weights there are kept as the checkpoint at fraction 1. With `resume`, the run's state is
    saved every `resume.every_s` seconds and when a stop is asked for (then TrainingInterrupted is
    raised), and a run started again continues from the saved state.
    """
    tr, va, te = (data.indices(p) for p in ("train", "val", "test"))
    x_all = torch.as_tensor(data.x, device=device)
    y_all = torch.as_tensor(data.labels[data.target], device=device)
    if study.is_classifier:
        y_all = y_all.long()
    x_train, y_train = x_all[tr], y_all[tr]
    n_train = len(tr)

    steps = study.budget.steps(batch_size, n_train)
    lr = study.optim.lr if base_lr is None else base_lr  # the base rate, the run's key in a rate search
    peak_lr = scaled_lr(study.optim, batch_size, base_lr)
    n_warmup = warmup_steps(study.optim, steps)
    stream = torch.as_tensor(sample_stream(n_train, steps * batch_size, numpy_rng(seed, "order")), device=device)

    model = init_model(study, data, seed).to(device)
    initial = {name: p.detach().cpu().clone() for name, p in model.named_parameters()}
    loss_fn = sample_loss_for(study.model, derive_seed(seed, "augment"))

    def eval_loss_fn() -> SampleLoss:
        """A contrastive loss draws augmentations: evaluate with a fresh, fixed stream each time."""
        return loss_fn.fresh(derive_seed(seed, "evaluation")) if isinstance(loss_fn, InfoNCELoss) else loss_fn

    optimizer = make_optimizer(study, model.parameters(), peak_lr)
    parts = micro_batches(batch_size, study.training.micro_batch_size)
    log_at = set(log_spaced_steps(steps, study.curve_points))
    ckpt_at = {max(0, int(round(f * steps))): f for f in checkpoint_fractions}
    checkpoints: dict[float, dict[str, Tensor]] = {}
    checkpoint_steps: dict[float, int] = {}
    half_life = None if stop_at is None else stop_at.average_half_life
    # what is evaluated, kept and measured: the weights as trained, or their running average
    shown = model if half_life is None else copy.deepcopy(model)
    average = None if half_life is None else dict(shown.named_parameters())

    def keep_checkpoint(fraction: float, step: int) -> None:
        checkpoints[fraction] = {k: v.detach().cpu().clone() for k, v in shown.state_dict().items()}
        checkpoint_steps[fraction] = step

    if 0 in ckpt_at:
        keep_checkpoint(ckpt_at[0], 0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    curve: list[dict] = []
    running = torch.zeros((), dtype=torch.float64, device=device)
    since, diverged_step, reached_step, pruned_step, first_step, wall_before = 0, None, None, None, 1, 0.0
    saved = resume.load() if resume is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        if average is not None:
            shown.load_state_dict(saved["average"])
        optimizer.load_state_dict(saved["optimizer"])
        running.copy_(saved["running"])
        since, curve = saved["since"], saved["curve"]
        checkpoints.update(saved["checkpoints"])
        checkpoint_steps.update(saved.get("checkpoint_steps", {}))  # absent in state saved by earlier versions
        first_step, wall_before = saved["step"] + 1, saved["wall_time_s"]
        if isinstance(loss_fn, InfoNCELoss):
            loss_fn.generator.set_state(saved["augment_rng"])
    model.train()
    start = time.perf_counter()
    for step in range(first_step, steps + 1):
        idx = stream[(step - 1) * batch_size : step * batch_size]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, peak_lr, n_warmup)
        optimizer.zero_grad(set_to_none=True)
        loss = backward_in_parts(model, loss_fn, x_train[idx], y_train[idx], parts, study.training.precision)
        optimizer.step()
        if average is not None:
            with torch.no_grad():
                averaging.update_(average, dict(model.named_parameters()), step, half_life)
        running += loss.detach()  # summed on the device: no host sync per step
        since += 1
        if step in log_at:
            train_loss = running.item() / since  # a CPU-GPU sync point, at log-spaced steps only
            running.zero_()
            since = 0
            val_loss = mean_loss(shown, eval_loss_fn(), x_all[va], y_all[va], study.eval_batch_size)
            curve.append(
                {"step": step, "samples_seen": step * batch_size, "train_loss": train_loss, "val_loss": val_loss}
            )
            if not math.isfinite(train_loss):
                diverged_step = step
                break
            if stop_at is not None and val_loss <= stop_at.value:
                reached_step = step
                if 1.0 in checkpoint_fractions:
                    keep_checkpoint(1.0, step)
                break
            if stop_at is not None and stop_at.pruner is not None and stop_at.pruner.gives_up((lr, seed), step):
                pruned_step = step
                break
        if step in ckpt_at:
            keep_checkpoint(ckpt_at[step], step)
        if resume is not None and step < steps and resume.due():
            resume.save_or_stop(
                {
                    "step": step,
                    "model": model.state_dict(),
                    **({} if average is None else {"average": shown.state_dict()}),
                    "optimizer": optimizer.state_dict(),
                    "running": running.cpu(),
                    "since": since,
                    "curve": curve,
                    "checkpoints": checkpoints,
                    "checkpoint_steps": checkpoint_steps,
                    "wall_time_s": wall_before + time.perf_counter() - start,
                    **({"augment_rng": loss_fn.generator.get_state()} if isinstance(loss_fn, InfoNCELoss) else {}),
                },
                step,
                steps,
            )
        if progress is not None:
            progress(step)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = wall_before + time.perf_counter() - start
    target = None if stop_at is None else stop_at.value
    run = RunFacts(batch_size, seed, lr, peak_lr, steps, diverged_step, first_step - 1, wall, target, reached_step,
                   pruned_step, half_life)
    tags = {"engine": "reference", "runs_together": 1, "cuda_graph": None, "cuda_graph_fallback": "",
            **micro_batch_columns(batch_size, parts)}
    return measure_run(study, shown, eval_loss_fn, x_all, y_all, (tr, va, te), initial, run, device, tags, curve, checkpoints,
                       checkpoint_steps)


def backward_in_parts(
    model: nn.Module, loss_fn: SampleLoss, x: Tensor, y: Tensor, parts: list[tuple[int, int]], precision: str = "fp32"
) -> Tensor:
    """Backward the batch's mean loss (into .grad) and return it (detached).

    In one part: `loss_fn(...).mean()`. In several (gradient accumulation): each micro-batch's mean
    weighted by its share of the batch, so the summed gradients are those of the full batch's mean.
    """
    device = x.device
    if len(parts) == 1:
        with autocast(device, precision):
            loss = loss_fn(model, x, y).mean()
        loss.backward()
        return loss.detach()
    total = torch.zeros((), device=device)
    for lo, hi in parts:
        with autocast(device, precision):
            part = loss_fn(model, x[lo:hi], y[lo:hi]).mean() * ((hi - lo) / len(x))
        part.backward()
        total += part.detach()
    return total
