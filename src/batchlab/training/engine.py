"""The batched engine: the K runs of one cell (seeds x learning rates) trained together.

At small batch sizes a GPU waits on Python and kernel launches, and the runs of a cell are
independent; so their parameters are stacked along a leading axis (`stack_module_state`) and one
step computes every run's gradient at once (`vmap(functional_call)` and autograd; no vmap for one run),
then updates each run with its own learning rate and optimizer state (batchlab.training.stacked_optim). Every
run is initialised, fed and scheduled exactly as the reference trainer (batchlab.training.reference) does, and is
measured by the reference's own functions on a plain module holding its weights, so a run's record,
curve, embeddings and checkpoints are the reference's (bitwise on CPU where the kernels agree; see
tests/test_engine.py). A run whose logged training loss is not finite is frozen at that step and
recorded as diverged, as in the reference, while the others go on.

The step reads only device tensors (step index, learning rates, the [K, steps, B] sample stream);
only the models are vmapped, and the per-sample loss runs once over all K x B outputs. The loss is
summed on the device and read at the log-spaced steps only, where every run's validation loss is
evaluated in one vmapped pass (one run: the reference's own evaluation). On CUDA the step can be
captured once as a CUDA graph and replayed. On CUDA the optimizer update is torch's fused kernel over
all stacked parameters (one launch per group of runs sharing a learning rate), in place, so a step
moves each parameter's bytes about once. Whether a cell's steps were captured is recorded in its run
table (`cuda_graph`, and `cuda_graph_fallback` with the reason when they were not). Contrastive
runs are batched too: each run draws its two views from its own loss's CPU generator, as it would
trained alone, and takes its negatives from its own batch only (batchlab.nets.contrastive.runs_info_nce);
their steps are not captured as CUDA graphs, since a graph would replay the first step's views.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from batchlab.training import averaging, stacked_optim
from batchlab.config import Study
from batchlab.data import Dataset
from batchlab.nets.contrastive import runs_info_nce
from batchlab.nets.objectives import SampleLoss, sample_loss_for
from batchlab.training.phases import phase
from batchlab.training.resume import ResumePoint
from batchlab.training.run import (
    RunFacts, RunResult, StopAt, autocast, init_model, log_spaced_steps, mean_loss_on_device, measure_run, micro_batch_columns,
    micro_batches, sample_stream,
)
from batchlab.training.schedule import lr_at, scaled_lr, warmup_steps
from batchlab.training.stops import Stops
from batchlab.seeding import derive_seed, numpy_rng

log = logging.getLogger(__name__)
GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before a CUDA graph is captured
EVAL_ELEMENTS = 1 << 24  # at a logged step, the K runs' validation chunk is at most this many input values


def use_batched(study: Study, device: torch.device) -> bool:
    """Whether a cell's runs go through this engine: asked for, or `auto` on a GPU."""
    return study.training.engine == "batched" or (study.training.engine == "auto" and device.type == "cuda")


def train_runs(
    study: Study,
    data: Dataset,
    batch_size: int,
    runs: list[tuple[float, int]],
    device: torch.device,
    checkpoint_fractions: dict[int, tuple[float, ...]],
    progress: Callable[[int], None] | None = None,
    resume: ResumePoint | None = None,
    stop_at: StopAt | None = None,
) -> list[RunResult]:
    """Train the runs (base_lr, seed) together; returns what train.train_run returns for each, in order.

    With `stop_at`, each run stops (is frozen, as a diverged run is) at the first logged step where its
    validation loss reaches the target; the comparison is made on the device, read with the curve.

    With `resume`, the stacked state is saved every `resume.every_s` seconds and on a stop request
    (then TrainingInterrupted is raised), and a call with the same runs continues from it.
    """
    return _Training(study, data, batch_size, runs, device, checkpoint_fractions, stop_at).run(progress, resume)


class _Bound:
    """A module with given parameters, callable as `model(x)` by the per-sample losses."""

    def __init__(self, base: nn.Module, params: dict[str, Tensor]):
        self.base, self.params = base, params

    def __call__(self, x: Tensor) -> Tensor:
        return functional_call(self.base, self.params, (x,))


class _Runs:
    """K models with stacked parameters, callable as one model on their samples laid end to end run by
    run ([K * B, ...] in, [K * B, ...] out), so that a per-sample loss treats them as one batch."""

    def __init__(self, base: nn.Module, params: dict[str, Tensor], k: int):
        self.base, self.params, self.k = base, params, k

    def __call__(self, x: Tensor) -> Tensor:
        out = self.per_run(x.reshape(self.k, -1, *x.shape[1:]))
        return out.reshape(-1, *out.shape[2:])

    def per_run(self, x: Tensor) -> Tensor:
        """[K, B, ...] in, [K, B, ...] out: run k's model on x[k]."""
        forward = lambda params, xb: functional_call(self.base, params, (xb,))  # noqa: E731
        return vmap(forward)(self.params, x)


class _Training:
    """The fixed inputs of the K runs, their stacked state, and the loop that trains them."""

    def __init__(self, study, data, batch_size, runs, device, checkpoint_fractions, stop_at=None):
        self.study, self.batch_size, self.runs, self.device, self.stop_at = study, batch_size, runs, device, stop_at
        self.fractions = [checkpoint_fractions.get(seed, ()) for _, seed in runs]
        self.splits = tuple(data.indices(p) for p in ("train", "val", "test"))
        self.x_all = torch.as_tensor(data.x, device=device)
        y_all = torch.as_tensor(data.labels[data.target], device=device)
        self.y_all = y_all.long() if study.is_classifier else y_all
        tr = self.splits[0]
        self.x_train, self.y_train = self.x_all[tr], self.y_all[tr]
        self.x_va, self.y_va = self.x_all[self.splits[1]], self.y_all[self.splits[1]]
        self.steps = steps = study.budget.steps(batch_size, len(tr))
        self.n_warmup = warmup_steps(study.optim, steps)
        self.peaks = [scaled_lr(study.optim, batch_size, lr) for lr, _ in runs]
        self.log_at = set(log_spaced_steps(steps, study.curve_points))
        self.ckpt_at = [
            {max(0, int(round(f * steps))): f for f in checkpoint_fractions.get(seed, ())} for _, seed in runs
        ]
        orders = [sample_stream(len(tr), steps * batch_size, numpy_rng(seed, "order")) for _, seed in runs]
        self.stream = torch.as_tensor(np.stack(orders), device=device).view(len(runs), steps, batch_size)
        models = [init_model(study, data, seed).to(device) for _, seed in runs]
        self.initial = [{n: p.detach().cpu().clone() for n, p in m.named_parameters()} for m in models]
        self.probe = models[0]  # a plain module; each run's weights are loaded into it to be measured
        self.contrastive = study.model.kind == "contrastive"
        self.loss_fn = sample_loss_for(study.model, 0)  # shared by the runs; contrastive ones have their own below
        # each contrastive run draws its augmentations from its own loss's generator, seeded as in the reference
        self.run_losses = (
            [sample_loss_for(study.model, derive_seed(seed, "augment")) for _, seed in runs] if self.contrastive
            else [self.loss_fn]
        )
        self.step_fn = _Step(study, self.probe, self.run_losses, models, self.peaks, self.n_warmup, device, batch_size,
                             self.eval_losses)
        self.half_life = None if stop_at is None else stop_at.average_half_life
        if self.half_life is not None:  # the runs' averages start at their initial weights
            self.step_fn.average = {n: p.clone() for n, p in self.step_fn.params.items()}

    @property
    def k(self) -> int:
        return len(self.runs)

    def eval_loss(self, k: int) -> SampleLoss:
        """Run k's evaluation loss, as the reference's: a contrastive one with a fresh, fixed stream of views."""
        if not self.contrastive:
            return self.loss_fn
        return self.run_losses[k].fresh(derive_seed(self.runs[k][1], "evaluation"))

    def eval_losses(self) -> list[SampleLoss]:
        return [self.eval_loss(k) for k in range(self.k)]

    def load_run(self, k: int) -> nn.Module:
        """The probe module holding run k's current weights (their average, when the runs average them)."""
        shown = self.step_fn.shown()
        with torch.no_grad():
            for n, p in self.probe.named_parameters():
                p.copy_(shown[n][k])
        return self.probe

    def state_dict_of(self, k: int) -> dict[str, Tensor]:
        return {n: v.detach().cpu().clone() for n, v in self.load_run(k).state_dict().items()}

    def run(self, progress, resume: ResumePoint | None) -> list[RunResult]:
        s, device = self.step_fn, self.device
        curves: list[list[dict]] = [[] for _ in self.runs]
        checkpoints: list[dict] = [{} for _ in self.runs]
        checkpoint_steps: list[dict] = [{} for _ in self.runs]
        for k, at in enumerate(self.ckpt_at):
            if 0 in at:
                self._keep_checkpoint(k, at[0], 0, checkpoints, checkpoint_steps)
        stops = Stops(self.k)
        pruner = None if self.stop_at is None else self.stop_at.pruner
        since, first_step, wall_before = 0, 1, 0.0
        saved = resume.load() if resume is not None else None
        if saved is not None:
            s.load(saved)
            since, curves, checkpoints = saved["since"], saved["curves"], saved["checkpoints"]
            checkpoint_steps = saved.get("checkpoint_steps", checkpoint_steps)  # absent in state saved by earlier versions
            stops = Stops.from_state(self.k, saved)
            first_step, wall_before = saved["step"] + 1, saved["wall_time_s"]
            stops.tell(pruner, self.runs, range(self.k), curves)
            s.set_active(stops.stopped())
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        going = stops.going()  # the runs still training; changes at logged steps only
        masked = len(going) < self.k
        start = time.perf_counter()
        for step in range(first_step, self.steps + 1):
            s.step(step, self.x_train, self.y_train, self.stream, masked)
            if self.half_life is not None:  # a frozen run's average stays
                averaging.update_(s.average, s.params, step, self.half_life, s.active if masked else None)
            since += 1
            if step in self.log_at:
                self._log(step, since, going, curves, stops, checkpoints, checkpoint_steps)
                stops.prune(pruner, self.runs, going, step, curves)
                since = 0
                s.set_active(stops.stopped())
                going = stops.going()
                masked = len(going) < self.k
                if not going:
                    break
            for k in going:
                if step in self.ckpt_at[k]:
                    self._keep_checkpoint(k, self.ckpt_at[k][step], step, checkpoints, checkpoint_steps)
            if resume is not None and step < self.steps and resume.due():
                elapsed = wall_before + time.perf_counter() - start
                state = {"step": step, "since": since, "curves": curves, "checkpoints": checkpoints,
                         "checkpoint_steps": checkpoint_steps, **stops.state(), "wall_time_s": elapsed, **s.state()}
                resume.save_or_stop(state, step, self.steps)
            if progress is not None:
                progress(step)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = wall_before + time.perf_counter() - start
        return [
            self._measure(k, stops, first_step - 1, wall, curves[k], checkpoints[k], checkpoint_steps[k])
            for k in range(self.k)
        ]

    def _log(self, step, since, active, curves, stops: Stops, checkpoints, checkpoint_steps) -> None:
        """A logged step: every running run's training and validation loss to its curve, divergence, and the target.

        The validation losses and the target comparison are computed on the device and read back together
        with the summed training losses: the host syncs here, at logged steps, and nowhere else."""
        s, x_va, y_va = self.step_fn, self.x_va, self.y_va
        if self.k == 1:  # the reference's own evaluation, bitwise
            vals = mean_loss_on_device(self.load_run(0), self.eval_loss(0), x_va, y_va, self.study.eval_batch_size)[None]
        else:  # every run at once (frozen runs too: cheaper than selecting, and their values are dropped below)
            vals = s.mean_losses(x_va, y_va, self.study.eval_batch_size)
        hit = vals <= self.stop_at.value if self.stop_at is not None else torch.zeros_like(vals, dtype=torch.bool)
        table = torch.stack([s.running.to(torch.float64), vals, hit.to(torch.float64)]).tolist()
        train_sums, val_losses, hits = ([column[k] for k in active] for column in table)
        s.running.zero_()
        for k, train_sum, val, at_target in zip(active, train_sums, val_losses, hits):
            train_loss = train_sum / since
            curves[k].append({"step": step, "samples_seen": step * self.batch_size, "train_loss": train_loss, "val_loss": val})
            if not math.isfinite(train_loss):
                stops.diverged[k] = step
            elif at_target:
                stops.reached[k] = step
                if 1.0 in self.fractions[k]:
                    self._keep_checkpoint(k, 1.0, step, checkpoints, checkpoint_steps)

    def _keep_checkpoint(self, k: int, fraction: float, step: int, checkpoints, checkpoint_steps) -> None:
        """Run k's current weights as its checkpoint at `fraction`, taken at `step`."""
        checkpoints[k][fraction], checkpoint_steps[k][fraction] = self.state_dict_of(k), step

    def _measure(self, k, stops: Stops, resumed_at, wall, curve, checkpoints, checkpoint_steps) -> RunResult:
        """Run k's record, embeddings and checkpoints, by the reference trainer's own measurements."""
        base_lr, seed = self.runs[k]
        target = None if self.stop_at is None else self.stop_at.value
        facts = RunFacts(self.batch_size, seed, base_lr, self.peaks[k], self.steps, stops.diverged[k], resumed_at, wall,
                         target, stops.reached[k], stops.pruned[k], self.half_life)
        tags = {"engine": "batched", "runs_together": self.k, **self.step_fn.graph_columns(),
                **micro_batch_columns(self.batch_size, self.step_fn.parts)}
        return measure_run(
            self.study, self.load_run(k), lambda: self.eval_loss(k), self.x_all, self.y_all, self.splits, self.initial[k],
            facts, self.device, tags, curve, checkpoints, checkpoint_steps,
        )


class CudaGraphRequired(RuntimeError):
    """A study with training.cuda_graphs: require whose step could not be captured."""


class _Step:
    """The stacked state of K runs and the step that advances all of them.

    One run on an eager device reads its step and learning rate as Python numbers (the reference's
    own arithmetic, no vmap); otherwise everything the step reads is a device tensor, so that on
    CUDA it can be captured as a graph and replayed. Nothing in the step reads a value back to the
    host (tests/test_engine.py runs it under a guard that fails on any such read).
    """

    def __init__(self, study: Study, probe, losses, models, peaks, n_warmup, device, batch_size, eval_losses):
        self.optim, self.device, self.n_warmup = study.optim, device, n_warmup
        # one loss for every run; contrastive runs one each, every run drawing its own augmentations
        self.losses, self.loss_fn, self.eval_losses = losses, losses[0], eval_losses
        self.contrastive = study.model.kind == "contrastive"
        self.precision, self.batch_size, self.k = study.training.precision, batch_size, len(models)
        params, buffers = stack_module_state(models)
        if buffers:
            raise ValueError("the batched engine trains models without buffers only")
        self.params = {n: p.detach() for n, p in params.items()}
        self.opt = stacked_optim.init_state(study.optim, self.params)
        self.running = torch.zeros(self.k, dtype=torch.float64, device=device)
        self.base = copy.deepcopy(probe).to("meta")
        self.peak_floats = peaks
        self.peaks = torch.tensor(peaks, dtype=torch.float64, device=device)
        self.lr_groups = stacked_optim.equal_runs(peaks)
        self.table = stacked_optim.bias_correction_table(device)
        self.active = torch.ones(self.k, dtype=torch.bool, device=device)
        self.step_t = torch.zeros((), dtype=torch.int64, device=device)
        self.graph_mode = study.training.cuda_graphs
        self.graphs_wanted = self.graph_mode != "off" and device.type == "cuda"
        self.graph_fallback = "training.cuda_graphs is off" if device.type == "cuda" and not self.graphs_wanted else ""
        self.graphs: dict[bool, torch.cuda.CUDAGraph] = {}
        self.eager_steps = 0
        self.fused = device.type == "cuda"  # torch's fused update kernels; on CPU the reference's own arithmetic
        self.layout_adopted = False
        self.graph_body = False  # True: run eagerly exactly what a graph would capture (tests it without CUDA)
        self.average: dict[str, Tensor] | None = None  # the runs' weight averages, when they keep them
        self.set_micro_batch(study.training.micro_batch_size)

    def shown(self) -> dict[str, Tensor]:
        """The weights that are evaluated, kept and measured: the averages when kept, else the weights."""
        return self.params if self.average is None else self.average

    def graph_columns(self) -> dict:
        """The run table's cuda_graph (True, False, or None where no GPU was used) and why not, if not."""
        if self.device.type != "cuda":
            return {"cuda_graph": None, "cuda_graph_fallback": ""}
        return {"cuda_graph": bool(self.graphs) and not self.graph_fallback, "cuda_graph_fallback": self.graph_fallback}

    # ---- state that a resumed run needs
    def state(self) -> dict:
        cpu = lambda d: {n: t.cpu() for n, t in d.items()}  # noqa: E731
        views = {"augment_rng": [loss.generator.get_state() for loss in self.losses]} if self.contrastive else {}
        average = {} if self.average is None else {"average": cpu(self.average)}
        return {"params": cpu(self.params), "optim": {k: cpu(v) for k, v in self.opt.items()},
                "running": self.running.cpu(), "micro_batch_size": self.parts[0][1], **average, **views}

    def load(self, saved: dict) -> None:
        for n, t in saved["params"].items():
            self.params[n].copy_(t)
        for key, tensors in saved["optim"].items():
            for n, t in tensors.items():
                self.opt[key][n].copy_(t)
        self.running.copy_(saved["running"])
        if self.average is not None:
            for n, t in saved["average"].items():
                self.average[n].copy_(t)
        self.set_micro_batch(saved["micro_batch_size"])
        for loss, state in zip(self.losses, saved.get("augment_rng", []) if self.contrastive else []):
            loss.generator.set_state(state)

    def set_active(self, diverged: list[int | None]) -> None:
        self.active.copy_(torch.tensor([d is None for d in diverged]))

    def set_micro_batch(self, size: int | None) -> None:
        self.parts = micro_batches(self.batch_size, size)
        self.graphs.clear()

    @torch.no_grad()
    def mean_losses(self, x: Tensor, y: Tensor, batch: int) -> Tensor:
        """[K] float64: every run's mean per-sample loss over (x, y), evaluated for all runs at once (vmap
        over the stacked weights) in chunks of at most `batch` samples that also bound the K runs'
        activations; no host sync. What the reference's mean_loss gives each run, to float32 rounding."""
        if self.contrastive:
            return self._contrastive_mean_losses(x, batch)
        per_sample = max(1, math.prod(x.shape[1:]))
        chunk = max(1, min(batch, EVAL_ELEMENTS // (self.k * per_sample)))
        f = lambda params, xb, yb: self.loss_fn(_Bound(self.base, params), xb, yb)  # noqa: E731
        losses = vmap(f, in_dims=(0, None, None))
        total = torch.zeros(self.k, dtype=torch.float64, device=self.device)
        for i in range(0, len(x), chunk):
            total += losses(self.shown(), x[i : i + chunk], y[i : i + chunk]).sum(1, dtype=torch.float64)
        return total / len(x)

    def _contrastive_mean_losses(self, x: Tensor, batch: int) -> Tensor:
        """mean_losses of contrastive runs: in chunks of exactly `batch` samples, the reference's, since a
        chunk holds a view's negatives; each run's views from its own fresh evaluation stream."""
        losses, runs = self.eval_losses(), _Runs(self.base, self.shown(), self.k)
        total = torch.zeros(self.k, dtype=torch.float64, device=self.device)
        for i in range(0, len(x), batch):
            chunk = x[i : i + batch]
            total += runs_info_nce(runs.per_run, chunk.expand(self.k, *chunk.shape), losses).sum(1, dtype=torch.float64)
        return total / len(x)

    # ---- the step
    def step(self, step: int, x_train: Tensor, y_train: Tensor, stream: Tensor, masked: bool) -> None:
        """Advance every run by one optimizer step (frozen runs keep their state when `masked`).

        Out of memory, the step is taken again in micro-batches of half the size; not for contrastive
        runs, whose negatives come from the micro-batch, so that halving it would change their task."""
        while True:
            try:
                return self._dispatch(step, x_train, y_train, stream, masked)
            except torch.OutOfMemoryError:
                size = self.parts[0][1] - self.parts[0][0]
                if size == 1 or self.contrastive:
                    raise
                log.warning("out of memory at micro-batch %d: retrying the step with %d", size, size // 2)
                self.set_micro_batch(size // 2)
                torch.cuda.empty_cache()

    def _dispatch(self, step, x_train, y_train, stream, masked) -> None:
        if self.k == 1 and not (self.graphs_wanted or self.graph_body or self.fused):
            lr = lr_at(step, self.peak_floats[0], self.n_warmup)  # the reference's own arithmetic, no vmap
            idx = stream[0, step - 1]
            x, y = x_train.index_select(0, idx)[None], y_train.index_select(0, idx)[None]
            loss, grads = self._gradients(x, y)
            in_place = not masked and self.device.type == "cpu"
            params, opt = stacked_optim.update(self.optim, self.params, grads, self.opt, step, lr, self.table, in_place)
            return self._commit(params, opt, loss, masked, False)
        self.step_t.fill_(step)
        if not self.graphs_wanted:
            return self._device_step(x_train, y_train, stream, masked, in_place=self.graph_body or self.fused)
        if self.eager_steps < GRAPH_WARMUP_STEPS or not self._graph(masked, x_train, y_train, stream):
            self._on_side_stream(lambda: self._device_step(x_train, y_train, stream, masked, in_place=True))
            self.eager_steps += 1
            return None
        self.graphs[masked].replay()
        return None

    def _device_step(self, x_train, y_train, stream, masked: bool, in_place: bool) -> None:
        """The step from device tensors only: what a CUDA graph captures. The batch's indices are selected
        by the step tensor; with `in_place` the state tensors are updated where they are (a graph's
        static buffers); the fused update when asked for and no run is frozen."""
        idx = stream.index_select(1, (self.step_t - 1).view(1)).view(-1)
        x = x_train.index_select(0, idx).view(self.k, self.batch_size, *x_train.shape[1:])
        y = y_train.index_select(0, idx).view(self.k, self.batch_size, *y_train.shape[1:])
        loss, grads = self._gradients(x, y)
        lr = stacked_optim.lr_now(self.step_t, self.peaks, self.n_warmup)
        if self.fused and not masked:
            if not self.layout_adopted:
                self._adopt_layout(grads)
            stacked_optim.fused_update_(self.optim, self.params, grads, self.opt, self.step_t, lr, self.lr_groups)
            self.running.add_(loss)
            return
        functional = masked or in_place or self.device.type != "cpu"
        params, opt = stacked_optim.update(
            self.optim, self.params, grads, self.opt, self.step_t, lr, self.table, in_place=not functional
        )
        self._commit(params, opt, loss, masked, in_place)

    def _adopt_layout(self, grads: dict[str, Tensor]) -> None:
        """Store each stacked parameter and its optimizer state in the memory layout its gradient comes in
        (vmap returns weight gradients transposed), so the fused update reads all of them without a copy.
        Done at the first fused step, before any graph is captured; the values are unchanged."""
        if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise RuntimeError("the stacked state's layout must be settled before a CUDA graph is captured")
        self.params = stacked_optim.adopt_layout(self.params, grads)
        self.opt = {key: stacked_optim.adopt_layout(d, grads) for key, d in self.opt.items()}
        self.layout_adopted = True

    def _gradients(self, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Batch loss [K] and gradients of the batch mean, accumulated over micro-batches weighted by size.

        Plain autograd through the (vmapped) forward: torch.func.grad's own backward formulas round
        differently from loss.backward(), and with autograd one run's gradient has the reference's bits.
        """
        total, grads = None, None
        whole = len(self.parts) == 1
        for lo, hi in self.parts:
            loss, g = self._part_gradients(x[:, lo:hi], y[:, lo:hi], None if whole else (hi - lo) / self.batch_size)
            if whole:
                return loss, g
            total = torch.zeros_like(loss).add_(loss) if total is None else total.add_(loss)
            grads = g if grads is None else {n: grads[n] + g[n] for n in g}
        return total, grads

    def _part_gradients(self, x: Tensor, y: Tensor, weight: float | None) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss [K] and gradients of one (micro-)batch: the K runs together, or one run without vmap."""
        one = self.k == 1
        leaves = {n: (p[0] if one else p).detach().requires_grad_() for n, p in self.params.items()}
        with torch.enable_grad():
            loss = self._mean_loss(leaves, x[0], y[0], weight) if one else self._mean_losses(leaves, x, y, weight)
            grads = torch.autograd.grad(loss if one else loss.sum(), list(leaves.values()))
        if one:
            return loss.detach()[None], {n: g[None] for n, g in zip(leaves, grads)}
        return loss.detach(), dict(zip(leaves, grads))

    def _mean_loss(self, params, x, y, weight: float | None) -> Tensor:
        """One run's mean (micro-)batch loss, weighted by its share of the batch when accumulating."""
        with autocast(self.device, self.precision):
            loss = self.loss_fn(_Bound(self.base, params), x, y).mean()
            return loss if weight is None else loss * weight

    def _mean_losses(self, params, x: Tensor, y: Tensor, weight: float | None) -> Tensor:
        """[K] every run's mean (micro-)batch loss: the models vmapped over the runs, and the per-sample loss
        once over all K x B samples. Under vmap an element-wise loss decomposes into dozens of kernels over
        the outputs; outside it, torch's own loss kernels run, which at large batches is most of a step."""
        with autocast(self.device, self.precision):
            runs = _Runs(self.base, params, self.k)
            if self.contrastive:  # each run's negatives from its own batch
                loss = runs_info_nce(runs.per_run, x, self.losses).mean(1)
            else:
                flat = lambda t: t.reshape(-1, *t.shape[2:])  # noqa: E731 - [K, B, ...] -> [K * B, ...], run by run
                loss = self.loss_fn(runs, flat(x), flat(y)).view(self.k, -1).mean(1)
            return loss if weight is None else loss * weight

    def _commit(self, params, opt, loss, masked: bool, in_place: bool) -> None:
        """Make the computed step the state: frozen runs keep theirs (masked); in place for a CUDA graph."""
        if masked:
            keep = lambda new, old: torch.where(self.active.view(-1, *[1] * (old.dim() - 1)), new, old)  # noqa: E731
            params = {n: keep(t, self.params[n]) for n, t in params.items()}
            opt = {key: {n: keep(t, self.opt[key][n]) for n, t in d.items()} for key, d in opt.items()}
        if in_place:
            for n, t in params.items():
                self.params[n].copy_(t)
            for key, d in opt.items():
                for n, t in d.items():
                    self.opt[key][n].copy_(t)
        else:
            self.params, self.opt = params, {**self.opt, **opt}
        self.running.add_(loss)

    # ---- CUDA graphs
    def _on_side_stream(self, fn) -> None:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream(self.device).wait_stream(side)

    def _no_graphs(self, reason: str) -> None:
        """Eager steps from here on, the reason logged once and kept for the run table; an error under `require`."""
        if self.graph_mode == "require":
            raise CudaGraphRequired(f"{reason} (training.cuda_graphs: require)")
        log.warning("%s; training continues with eager steps (recorded in the run table's cuda_graph_fallback)", reason)
        self.graphs_wanted, self.graph_fallback = False, reason

    def _graph(self, masked: bool, x_train, y_train, stream) -> bool:
        """Whether a captured graph of this step variant is ready (captured now if need be).

        A failed capture fails the job under `require`; otherwise training goes on eagerly, and the
        reason is logged once and kept for the run table."""
        if masked in self.graphs:
            return True
        if self.contrastive:  # a graph would replay the views drawn at its capture
            self._no_graphs("contrastive runs draw their augmentations on the host at every step")
            return False
        graph = torch.cuda.CUDAGraph()
        try:
            with phase("capture"), torch.cuda.graph(graph):
                self._device_step(x_train, y_train, stream, masked, in_place=True)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - any capture failure: eager steps, or an error under `require`
            self._no_graphs(f"CUDA graph capture failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            return False
        self.graphs[masked] = graph
        return True
