"""What a run is, shared by both trainers: its initial weights, sample stream, log steps,
micro-batches and precision, and the measurements and record of a trained run.

The reference trainer (batchlab.training.reference) and the batched engine (batchlab.training.engine) both import these,
so a run is fed and measured the same way whichever trains it, and neither trainer imports the other.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from batchlab import forked
from batchlab.config import Study
from batchlab.data import Dataset
from batchlab.measure.geometry import distance_from_init, top_hessian_eigenvalue
from batchlab.nets.models import build_model, count_parameters
from batchlab.nets.objectives import SampleLoss
from batchlab.training.phases import phase
from batchlab.training.tuning import Pruner
from batchlab.seeding import derive_seed, numpy_rng


@dataclass
class RunResult:
    """What one run leaves behind: a row of metrics, a loss curve, embeddings and weights."""

    record: dict
    curve: list[dict]
    embeddings: np.ndarray
    checkpoints: dict[float, dict[str, Tensor]] = field(default_factory=dict)
    checkpoint_steps: dict[float, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StopAt:
    """Train to a target: a run stops at the first logged step where its validation loss is at most `value`.

    The check happens where the curve is logged (the steps of log_spaced_steps), never between them, so it
    adds no host synchronisation to the steps; the run's weights where it stopped are its last checkpoint.
    With `average_half_life` the check, the validation curve, the checkpoints and the run's measurements are of the
    exponential moving average of the weights (batchlab.training.averaging), not of the weights as trained."""

    value: float
    average_half_life: float | None = None
    pruner: Pruner | None = field(default=None, compare=False)  # rate tuning: stop trials that can no longer win


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


@torch.no_grad()
def mean_loss(model: nn.Module, loss_fn: SampleLoss, x: Tensor, y: Tensor, batch: int) -> float:
    """Mean per-sample loss over a whole split, in eval mode and in chunks."""
    if len(x) == 0:
        return math.nan
    return mean_loss_on_device(model, loss_fn, x, y, batch).item()


@torch.no_grad()
def mean_loss_on_device(model: nn.Module, loss_fn: SampleLoss, x: Tensor, y: Tensor, batch: int) -> Tensor:
    """mean_loss as a 0-dim float64 tensor on the split's device, read by nobody yet (no host sync)."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(0, len(x), batch):
        total += loss_fn(model, x[i : i + batch], y[i : i + batch]).sum(dtype=torch.float64)
    model.train(was_training)
    return total / len(x)


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
    """The model's encode(x), in eval mode and in chunks; [N, 0] for a factory model without encode, whose
    downstream step is then skipped with that reason (batchlab.measure.downstream)."""
    if not callable(getattr(model, "encode", None)):
        return np.zeros((len(x), 0), dtype=np.float32)
    was_training = model.training
    model.eval()
    z = torch.cat([model.encode(x[i : i + batch]) for i in range(0, len(x), batch)])
    model.train(was_training)
    return z.float().cpu().numpy()


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """Peak memory of the run: CUDA allocator peak on GPU, the process's peak RSS on CPU. A job forked
    from a warm server counts the libraries' code only as far as it touched it (about 90 MB less with
    torch than a job started cold), so its kind says so."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    kind = "process_max_rss_forked" if forked.FORKED_JOB else "process_max_rss"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, kind


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
        out["sharpness"], out["sharpness_iters"], out["sharpness_converged"] = top_hessian_eigenvalue(
            model, loss_fn, x[pick], y[pick], study.sharpness.iters, study.sharpness.tol, seed=derive_seed(seed, "sharpness")
        )
    return out


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
    target: float | None = None  # train-to-target: the validation loss it trained to
    reached_step: int | None = None  # the logged step where it reached the target
    pruned_step: int | None = None  # rate tuning: the logged step where it stopped, unable to beat a finished rate
    average_half_life: float | None = None  # train-to-target: the weight average's half-life, None without one

    @property
    def done(self) -> int:
        """Steps the run took: to divergence, to the target, or the whole budget."""
        return self.diverged_step or self.reached_step or self.pruned_step or self.steps


def micro_batches(batch_size: int, micro_batch_size: int | None) -> list[tuple[int, int]]:
    """(start, stop) of each micro-batch of a batch: the whole batch unless micro_batch_size is smaller."""
    size = batch_size if micro_batch_size is None else min(micro_batch_size, batch_size)
    return [(lo, min(lo + size, batch_size)) for lo in range(0, batch_size, size)]


def micro_batch_columns(batch_size: int, parts: list[tuple[int, int]]) -> dict:
    return {"micro_batch_size": parts[0][1] - parts[0][0], "accumulation_steps": len(parts)}


def autocast(device: torch.device, precision: str):
    """The forward's precision context: bf16 autocast (parameters and optimizer state stay fp32) or none."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@phase("measure")
def measure_run(
    study: Study, model: nn.Module, eval_loss_fn: Callable[[], SampleLoss], x_all: Tensor, y_all: Tensor,
    splits: tuple, initial: dict[str, Tensor], run: RunFacts, device: torch.device, tags: dict,
    curve: list[dict], checkpoints: dict, checkpoint_steps: dict[float, int],
) -> RunResult:
    """The end-of-run measurements and the record of a trained model (shared by every engine)."""
    tr, va, te = splits
    batch_size, n_train = run.batch_size, len(tr)
    done = run.done
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
        "sharpness_converged": ending.get("sharpness_converged", False),  # False where not measured
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
        "cuda_graph": tags["cuda_graph"],
        "cuda_graph_fallback": tags["cuda_graph_fallback"],
        **({} if run.target is None else {"target": run.target, "reached_target": run.reached_step is not None,
                                          "pruned_step": -1 if run.pruned_step is None else run.pruned_step,
                                          "average_half_life": math.nan if run.average_half_life is None
                                          else run.average_half_life}),
    }
    embeddings = embed(model, x_all, study.eval_batch_size)
    return RunResult(record, curve, embeddings, checkpoints, checkpoint_steps)
