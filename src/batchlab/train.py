"""The reference trainer: one run, read top to bottom; the specification of training.

A run is (study, batch size, learning rate, seed). Its weights are initialised from the seed
alone and it reads the training set as one seeded stream of epoch permutations, cut into
batches; so for a given seed every batch size starts from the same weights and sees the same
samples in the same order: a paired comparison in which only the batch size differs.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from batchlab.config import Study
from batchlab.data import Dataset
from batchlab.contrastive import InfoNCELoss
from batchlab.geometry import distance_from_init, top_hessian_eigenvalue
from batchlab.models import build_model, count_parameters
from batchlab.objectives import SampleLoss, sample_loss_for
from batchlab.resume import ResumePoint
from batchlab.schedule import lr_at, scaled_lr, warmup_steps
from batchlab.seeding import derive_seed, numpy_rng


@dataclass
class RunResult:
    """What one run leaves behind: a row of metrics, a loss curve, embeddings and weights."""

    record: dict
    curve: list[dict]
    embeddings: np.ndarray
    checkpoints: dict[float, dict[str, Tensor]] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """'auto' picks the GPU when one is present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no GPU")
    return torch.device(name)


def log_spaced_steps(total: int, points: int) -> list[int]:
    """About `points` distinct steps from 1 to total, evenly spaced in log(step); always ends at total."""
    raw = np.unique(np.round(np.geomspace(1, total, num=min(points, total))).astype(int))
    return sorted(set(raw.tolist()) | {total})


def sample_stream(n_train: int, total_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the training stream: consecutive random permutations of the training set."""
    epochs = math.ceil(total_samples / n_train)
    return np.concatenate([rng.permutation(n_train) for _ in range(epochs)])[:total_samples]


def init_model(study: Study, data: Dataset, seed: int) -> nn.Module:
    """The model with weights drawn from the seed only (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init"))
        return build_model(study.model, tuple(data.x.shape[1:]), data.n_classes())


def make_optimizer(study: Study, params, lr: float) -> torch.optim.Optimizer:
    o = study.optim
    if o.name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=o.momentum, weight_decay=o.weight_decay)


@torch.no_grad()
def mean_loss(model: nn.Module, loss_fn: SampleLoss, x: Tensor, y: Tensor, batch: int) -> float:
    """Mean per-sample loss over a whole split, in eval mode and in chunks."""
    if len(x) == 0:
        return math.nan
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(0, len(x), batch):
        total += loss_fn(model, x[i : i + batch], y[i : i + batch]).sum(dtype=torch.float64)
    model.train(was_training)
    return total.item() / len(x)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int) -> float:
    """Fraction of a split a classifier labels correctly (eval mode, in chunks)."""
    if len(x) == 0:
        return math.nan
    was_training = model.training
    model.eval()
    correct = sum(int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    model.train(was_training)
    return correct / len(x)


@torch.no_grad()
def embed(model: nn.Module, x: Tensor, batch: int) -> np.ndarray:
    was_training = model.training
    model.eval()
    z = torch.cat([model.encode(x[i : i + batch]) for i in range(0, len(x), batch)])
    model.train(was_training)
    return z.float().cpu().numpy()


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """Peak memory of the run: CUDA allocator peak on GPU, the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"


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


ACCURACY_COLUMNS = ("train_accuracy", "val_accuracy", "test_accuracy", "accuracy_gap")


def where_training_ended(
    study: Study, model: nn.Module, loss_fn: SampleLoss, x: Tensor, y: Tensor, splits: tuple, seed: int
) -> dict:
    """Sharpness on a fixed training subset and, for classifiers, accuracy per split and its gap."""
    tr = splits[0]
    out: dict = {}
    if study.is_classifier:
        for name, idx in zip(("train", "val", "test"), splits):
            out[f"{name}_accuracy"] = accuracy(model, x[idx], y[idx], study.eval_batch_size)
        out["accuracy_gap"] = out["train_accuracy"] - out["test_accuracy"]
    if study.sharpness.samples:
        size = min(study.sharpness.samples, len(tr))
        pick = torch.as_tensor(tr[np.sort(numpy_rng("sharpness-subset").choice(len(tr), size, replace=False))], device=x.device)
        model.eval()
        out["sharpness"], out["sharpness_iters"] = top_hessian_eigenvalue(
            model, loss_fn, x[pick], y[pick], study.sharpness.iters, study.sharpness.tol, seed=derive_seed(seed, "sharpness")
        )
    return out


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
) -> RunResult:
    """Train one autoencoder run and measure it (see the module docstring for the design).

    With `resume`, the run's state is saved every `resume.every_s` seconds and when a stop is asked
    for (then TrainingInterrupted is raised), and a run started again continues from the saved state.
    """
    tr, va, te = (data.indices(p) for p in ("train", "val", "test"))
    x_all = torch.as_tensor(data.x, device=device)
    y_all = torch.as_tensor(data.labels[data.target], device=device)
    if study.is_classifier:
        y_all = y_all.long()
    x_train, y_train = x_all[tr], y_all[tr]
    n_train = len(tr)

    steps = study.budget.steps(batch_size, n_train)
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
    if 0 in ckpt_at:
        checkpoints[ckpt_at[0]] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    curve: list[dict] = []
    running = torch.zeros((), dtype=torch.float64, device=device)
    since, diverged_step, first_step, wall_before = 0, None, 1, 0.0
    saved = resume.load() if resume is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        running.copy_(saved["running"])
        since, curve, checkpoints = saved["since"], saved["curve"], saved["checkpoints"]
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
        running += loss.detach()  # summed on the device: no host sync per step
        since += 1
        if step in log_at:
            train_loss = running.item() / since  # a CPU-GPU sync point, at log-spaced steps only
            running.zero_()
            since = 0
            val_loss = mean_loss(model, eval_loss_fn(), x_all[va], y_all[va], study.eval_batch_size)
            curve.append(
                {"step": step, "samples_seen": step * batch_size, "train_loss": train_loss, "val_loss": val_loss}
            )
            if not math.isfinite(train_loss):
                diverged_step = step
                break
        if step in ckpt_at:
            checkpoints[ckpt_at[step]] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if resume is not None and step < steps and resume.due():
            resume.save_or_stop(
                {
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "running": running.cpu(),
                    "since": since,
                    "curve": curve,
                    "checkpoints": checkpoints,
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
    lr = study.optim.lr if base_lr is None else base_lr
    run = RunFacts(batch_size, seed, lr, peak_lr, steps, diverged_step, first_step - 1, wall)
    tags = {"engine": "reference", "runs_together": 1, **micro_batch_columns(batch_size, parts)}
    return measure_run(study, model, eval_loss_fn, x_all, y_all, (tr, va, te), initial, run, device, tags, curve, checkpoints)


@dataclass
class RunFacts:
    """What a finished training loop hands to the measurements: the run's identity, length and time."""

    batch_size: int
    seed: int
    base_lr: float
    peak_lr: float
    steps: int
    diverged_step: int | None
    resumed_at_step: int
    wall_time_s: float


def micro_batches(batch_size: int, micro_batch_size: int | None) -> list[tuple[int, int]]:
    """(start, stop) of each micro-batch of a batch: the whole batch unless micro_batch_size is smaller."""
    size = batch_size if micro_batch_size is None else min(micro_batch_size, batch_size)
    return [(lo, min(lo + size, batch_size)) for lo in range(0, batch_size, size)]


def micro_batch_columns(batch_size: int, parts: list[tuple[int, int]]) -> dict:
    return {"micro_batch_size": parts[0][1] - parts[0][0], "accumulation_steps": len(parts)}


def autocast(device: torch.device, precision: str):
    """The forward's precision context: bf16 autocast (parameters and optimizer state stay fp32) or none."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


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


def measure_run(
    study: Study, model: nn.Module, eval_loss_fn: Callable[[], SampleLoss], x_all: Tensor, y_all: Tensor,
    splits: tuple, initial: dict[str, Tensor], run: RunFacts, device: torch.device, tags: dict,
    curve: list[dict], checkpoints: dict,
) -> RunResult:
    """The end-of-run measurements and the record of a trained model (shared by every engine)."""
    tr, va, te = splits
    batch_size, n_train = run.batch_size, len(tr)
    done = run.diverged_step or run.steps
    peak_mb, peak_kind = peak_memory_mb(device)
    diverged = run.diverged_step is not None
    losses = {
        split: math.nan if diverged else mean_loss(model, eval_loss_fn(), x_all[idx], y_all[idx], study.eval_batch_size)
        for split, idx in (("train", tr), ("val", va), ("test", te))
    }
    ending = {} if diverged else where_training_ended(study, model, eval_loss_fn(), x_all, y_all, (tr, va, te), run.seed)
    wall = run.wall_time_s
    record = {
        "batch_size": batch_size,
        "seed": run.seed,
        "base_lr": run.base_lr,
        "lr": run.peak_lr,
        "lr_rule": study.optim.lr_rule,
        "optimizer": study.optim.name,
        "budget_unit": study.budget.unit,
        "budget_amount": study.budget.amount,
        "steps": done,
        "samples_seen": done * batch_size,
        "epochs": done * batch_size / n_train,
        "train_loss": losses["train"],
        "val_loss": losses["val"],
        "test_loss": losses["test"],
        "generalization_gap": losses["test"] - losses["train"],
        "distance_from_init": distance_from_init(initial, model),
        "sharpness": ending.get("sharpness", math.nan),
        "sharpness_iters": ending.get("sharpness_iters", 0),
        **({k: ending.get(k, math.nan) for k in ACCURACY_COLUMNS} if study.is_classifier else {}),
        "diverged": diverged,
        "diverged_step": run.diverged_step if diverged else -1,
        "resumed_at_step": run.resumed_at_step,
        "wall_time_s": wall,
        "samples_per_s": done * batch_size / wall,
        "peak_mem_mb": peak_mb,
        "peak_mem_kind": peak_kind,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "n_params": count_parameters(model),
        "n_train": n_train,
        "torch_threads": torch.get_num_threads(),
        "engine": tags["engine"],
        "runs_together": tags["runs_together"],
        "micro_batch_size": tags["micro_batch_size"],
        "accumulation_steps": tags["accumulation_steps"],
        "precision": study.training.precision,
    }
    embeddings = embed(model, x_all, study.eval_batch_size)
    return RunResult(record=record, curve=curve, embeddings=embeddings, checkpoints=checkpoints)
