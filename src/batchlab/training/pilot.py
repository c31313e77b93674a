"""The `advise` pilot: every (batch size, rate) candidate trained toward the to_target target by successive halving
on an equal wall-time budget (batchlab.training.halving), within the block's cap in minutes.

First the warm throughput X(B) of each batch size is measured (batchlab.training.throughput, shorter blocks than the
recommendation's own measurement); the rest of the cap, less a share kept for the evaluations, is the halving's
training budget. Each candidate is a run of the reference trainer's arithmetic kept in memory (model, optimizer,
sample stream), so a survivor goes on from where its last rung stopped: one seed (advise.seed), its weights, its
sample stream and its checks of the target at the log-spaced steps of a to-target run of that batch size, and its
crossing interpolated as the to-target analysis interpolates it. Given X(B) and the budget the steps are fixed;
only a candidate stopped by the wall cap depends on the clock, and is recorded as such.
"""

from __future__ import annotations

import copy
import math
import sys
import time

import pandas as pd
import torch

from batchlab.config import Advise, Study, ToTarget
from batchlab.data import Dataset
from batchlab.measure.crossing import steps_to_target
from batchlab.nets.contrastive import InfoNCELoss
from batchlab.nets.objectives import sample_loss_for
from batchlab.seeding import derive_seed, numpy_rng
from batchlab.training import averaging, halving, throughput
from batchlab.training.device import resolve_device
from batchlab.training.reference import backward_in_parts, make_optimizer
from batchlab.training.run import StopAt, init_model, log_spaced_steps, mean_loss, micro_batches, sample_stream
from batchlab.training.halving import SPEED_BLOCK_S, SPEED_REPEATS, TRAIN_SHARE
from batchlab.training.schedule import lr_at, scaled_lr, warmup_steps


def candidates(study: Study, to_target: ToTarget, sizes: list[int]) -> list[halving.Candidate]:
    """Batch sizes x rates: the lr_tuning grid around the rule's rate when to_target tunes the rate, else the rate
    of the study's rule (every rate of optim.lr_grid with lr_rule tuned). `study` is the to-target view."""
    grid = to_target.lr_tuning
    bases = [study.optim.lr * m for m in grid.multipliers()] if grid is not None else study.optim.candidate_lrs()
    return [halving.Candidate(b, base, scaled_lr(study.optim, b, base)) for b in sizes for base in bases]


class _Run:
    """One candidate trained in memory, one seed: goes on from its last step when asked for more."""

    def __init__(self, study: Study, data: Dataset, tensors: dict, c: halving.Candidate, seed: int, stop: StopAt,
                 device: torch.device, deadline: float):
        self.c, self.study, self.stop, self.t, self.deadline = c, study, stop, tensors, deadline
        n_train = len(tensors["train"])
        self.cap = study.budget.steps(c.batch_size, n_train)  # to_target's cap (the view's budget)
        self.log_at = set(log_spaced_steps(self.cap, study.curve_points))
        self.n_warmup = warmup_steps(study.optim, self.cap)
        self.stream = torch.as_tensor(sample_stream(n_train, self.cap * c.batch_size, numpy_rng(seed, "order")),
                                      device=device)
        self.model = init_model(study, data, seed).to(device)
        self.model.train()
        self.loss_fn = sample_loss_for(study.model, derive_seed(seed, "augment"))
        self.eval_fn = (self.loss_fn.fresh(derive_seed(seed, "evaluation")) if isinstance(self.loss_fn, InfoNCELoss)
                        else self.loss_fn)
        self.optimizer = make_optimizer(study, self.model.parameters(), c.lr)
        self.parts = micro_batches(c.batch_size, study.training.micro_batch_size)
        self.shown = self.model if stop.average_half_life is None else copy.deepcopy(self.model)
        self.average = None if stop.average_half_life is None else dict(self.shown.named_parameters())
        self.step, self.curve, self.done = 0, [], None  # done: the Progress once reached, diverged or capped

    def _val(self) -> float:
        return mean_loss(self.shown, self.eval_fn, self.t["x_val"], self.t["y_val"], self.study.eval_batch_size)

    def advance(self, steps: int) -> halving.Progress:
        if self.done is not None:
            return self.done
        b, end = self.c.batch_size, min(steps, self.cap)
        x, y = self.t["x_train"], self.t["y_train"]
        while self.step < end:
            if time.perf_counter() > self.deadline:
                return halving.Progress(self.step, self._val(), wall_stopped=True)
            self.step += 1
            idx = self.stream[(self.step - 1) * b : self.step * b]
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.step, self.c.lr, self.n_warmup)
            self.optimizer.zero_grad(set_to_none=True)
            backward_in_parts(self.model, self.loss_fn, x[idx], y[idx], self.parts, self.study.training.precision)
            self.optimizer.step()
            if self.average is not None:
                with torch.no_grad():
                    averaging.update_(self.average, dict(self.model.named_parameters()), self.step,
                                      self.stop.average_half_life)
            if self.step in self.log_at:  # the to-target run's checks
                val = self._val()
                self.curve.append({"step": self.step, "val_loss": val})
                if not math.isfinite(val):
                    self.done = halving.Progress(self.step, val, diverged=True)
                    return self.done
                if val <= self.stop.value:
                    crossing = steps_to_target([c["step"] for c in self.curve], [c["val_loss"] for c in self.curve],
                                               self.stop.value, self.study.steps_to_target.interpolate)
                    self.done = halving.Progress(self.step, val, reached=True, crossing=crossing)
                    return self.done
        val = self.curve[-1]["val_loss"] if self.curve and self.curve[-1]["step"] == self.step else self._val()
        if self.step >= self.cap:
            self.done = halving.Progress(self.step, val, capped=True)
            return self.done
        return halving.Progress(self.step, val)


def run_pilot(study: Study, data: Dataset, advise: Advise, to_target: ToTarget, sizes: list[int], stop: StopAt,
              device: torch.device | str, speed: dict[int, float] | None = None, budget_s: float | None = None,
              started: float | None = None) -> pd.DataFrame:
    """The halving table: one row per candidate and rung (see halving.successive_halving), with the target, the
    seed, the budget and whether the wall cap stopped the pilot. `study` is the to-target view of the study.
    `speed` (X(B) in samples/s) and `budget_s` replace the measurement and the budget from the clock (tests)."""
    started = time.perf_counter() if started is None else started
    device = resolve_device(device) if isinstance(device, str) else device
    if device.type == "cpu":
        torch.set_num_threads(1)  # as a training job runs
    if speed is None:
        measured = throughput.measure(study, data, sizes, device, repeats=SPEED_REPEATS, block_s=SPEED_BLOCK_S)
        speed = {int(b): float(x) for b, x in measured.groupby("batch_size")["samples_per_s"].median().items()}
    deadline = started + advise.minutes * 60
    if budget_s is None:
        budget_s = max(deadline - time.perf_counter(), 0.0) * TRAIN_SHARE
    tensors = _tensors(study, data, device)
    runs = {}

    def advance(c: halving.Candidate, steps: int) -> halving.Progress:
        key = (c.batch_size, c.base_lr)
        if key not in runs:
            runs[key] = _Run(study, data, tensors, c, advise.seed, stop, device, deadline)
        return runs[key].advance(steps)

    pool = candidates(study, to_target, sizes)
    rows = halving.successive_halving(pool, speed, advise.eta, budget_s, advance)
    table = pd.DataFrame(rows)
    table["target"], table["seed"], table["eta"] = stop.value, advise.seed, advise.eta
    table["training_budget_s"], table["cap_minutes"] = budget_s, advise.minutes
    table["stopped_by_wall_cap"] = bool(table["wall_stopped"].any())
    table["wall_time_s"] = time.perf_counter() - started
    won = halving.winner(rows)
    print(f"batchlab advise: {len(pool)} candidates, {table['rung'].max() + 1} rung(s), {table['wall_time_s'].iloc[0]:.1f} s; "
          f"batch size {won['batch_size']} at rate {won['lr']:.3g} "
          + (f"reached the target in an estimated {won['time_to_target_s']:.3g} s" if won["reached"]
             else f"did not reach the target (validation loss {won['val_loss']:.4g} > {stop.value:.4g})")
          + (" (stopped by the wall cap)" if table["stopped_by_wall_cap"].iloc[0] else ""), file=sys.stderr, flush=True)
    return table


def _tensors(study: Study, data: Dataset, device: torch.device) -> dict:
    x_all = torch.as_tensor(data.x, device=device)
    y_all = torch.as_tensor(data.labels[data.target], device=device)
    if study.is_classifier:
        y_all = y_all.long()
    tr, va = torch.as_tensor(data.indices("train"), device=device), torch.as_tensor(data.indices("val"), device=device)
    return {"train": tr, "x_train": x_all[tr], "y_train": y_all[tr], "x_val": x_all[va], "y_val": y_all[va]}
