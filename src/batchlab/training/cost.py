"""What a config costs before it runs: each study's optimizer steps and an estimated time on this machine.

A training step of a model of kind k at batch size B is taken to cost
    t(B) = step_s[k] + param_s[k] x P + mac_s[k] x B x W,
with W the multiply-accumulates of one sample's forward pass and P the parameters, both counted from
the config alone: a fixed part (Python, kernel launches), a part per parameter (at small batch sizes a
step is bound by moving the weights, their gradients and the optimizer state) and a part per
multiply-accumulate of the batch. The three rates come from a short calibration (a small and a large
reference model of the kind, trained a few steps at batch size 1 and the large one also at 32, on this
machine's device with one thread as a job has), run once and cached under the user's cache folder,
keyed by machine, device setting and torch version; or from a rates file (`batchlab validate --rates`,
or the BATCHLAB_RATES environment variable). Evaluation, sharpness and gradient-noise passes are counted
from the same rates; the SVMs and the jobs' start-up are not. The estimate is one job at a time: jobs
running side by side divide it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, fields, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from batchlab.config import (
    CNNClassifier, Config, ContrastiveEncoder, ConvAE, DenseAE, DiagonalQuadratic, LinearRegression, MLPClassifier,
    PythonModel, Study, split_sizes,
)
from batchlab.training import halving

if TYPE_CHECKING:
    import torch

RATES_ENV = "BATCHLAB_RATES"
CALIBRATION_BATCH = 32
CALIBRATION_BLOCKS, CALIBRATION_STEPS = 3, 4  # timed blocks of steps per measurement

# A small and a large model of each kind, with their sample shapes: what the calibration trains. The
# large one is about the size of the default studies' models, so that its weights leave the cache.
REFERENCE = {
    "dense_ae": (
        (DenseAE(kind="dense_ae", hidden=[64, 16], latent=8), (256,)),
        (DenseAE(kind="dense_ae", hidden=[256, 64], latent=32), (2048,)),
    ),
    "conv_ae": (
        (ConvAE(kind="conv_ae", channels=[4, 8], latent=8), (1, 16, 16)),
        (ConvAE(kind="conv_ae", channels=[16, 32], latent=32), (1, 32, 32)),
    ),
    "mlp": (
        (MLPClassifier(kind="mlp", hidden=[32], latent=16), (40,)),
        (MLPClassifier(kind="mlp", hidden=[1024], latent=64), (512,)),
    ),
    "cnn": (
        (CNNClassifier(kind="cnn", channels=[4, 8], latent=16), (1, 16, 16)),
        (CNNClassifier(kind="cnn", channels=[16, 32], latent=64), (1, 32, 32)),
    ),
    "contrastive": (
        (ContrastiveEncoder(kind="contrastive", channels=[4, 8], latent=8, projection=4), (1, 40)),
        (ContrastiveEncoder(kind="contrastive", channels=[32, 64], latent=64, projection=32), (1, 40)),
    ),
    "linear": (
        (LinearRegression(kind="linear"), (32,)),
        (LinearRegression(kind="linear"), (4096,)),
    ),
    "quadratic": (
        (DiagonalQuadratic(kind="quadratic"), (32,)),
        (DiagonalQuadratic(kind="quadratic"), (4096,)),
    ),
}


# ---------------------------------------------------------------- the work of a model, from its config


def sample_shape(data) -> tuple[int, ...] | None:
    """A sample's shape (no batch axis), known from the data block before the data are made; None if not."""
    shapes = {
        "synthetic_ehr": lambda d: (d.n_features,),
        "phantom_mri": lambda d: (1, d.size, d.size),
        "digits": lambda d: (1, 8, 8) if d.as_images else (64,),
        "mnist1d": lambda d: (1, 40),
        "noisy_quadratic": lambda d: (d.n_features,),
        "file": lambda d: d.summary().sample_shape if d.facts_known()
        else (len(d.features),) if d.features and d.path.suffix.lower() != ".npz" else None,
    }
    return shapes[data.name](data) if data.name in shapes else None


def n_classes(data) -> int:
    """Classes of the target as far as the config tells (the head is a negligible part of the work)."""
    if data.target_task() == "regression":
        return 1
    return 10 if data.name in ("digits", "mnist1d") else 2


def _linear(a: int, b: int) -> tuple[int, int]:
    return a * b, a * b + b


def _conv(a: int, b: int, kernel: int, dims: int, positions: int) -> tuple[int, int]:
    """A convolution (or its transpose) whose kernel is applied at `positions` places."""
    weights = a * b * kernel**dims
    return weights * positions, weights + b


def model_work(spec, shape: tuple[int, ...], classes: int) -> tuple[int, int]:
    """(multiply-accumulates of one sample's forward pass, parameters) of the model batchlab.nets.models builds."""
    layers: list[tuple[int, int]] = []
    if isinstance(spec, (DenseAE, MLPClassifier)):
        widths = [math.prod(shape), *spec.hidden]
        if isinstance(spec, MLPClassifier):
            widths.append(spec.latent)
        layers += [_linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
        if isinstance(spec, DenseAE):
            layers.append(_linear(widths[-1], spec.latent))
            mirrored = [*widths, spec.latent][::-1]  # the decoder: latent back to the input
            layers += [_linear(a, b) for a, b in zip(mirrored[:-1], mirrored[1:])]
        else:
            layers.append(_linear(spec.latent, classes))
    elif isinstance(spec, ConvAE):
        dims, factor = len(shape) - 1, 2 ** len(spec.channels)
        size = [math.ceil(s / factor) * factor for s in shape[1:]]
        widths, positions = [shape[0], *spec.channels], []
        for a, b in zip(widths[:-1], widths[1:]):
            size = [s // 2 for s in size]
            positions.append(math.prod(size))
            layers.append(_conv(a, b, 4, dims, positions[-1]))
        flat = spec.channels[-1] * math.prod(size)
        layers += [_linear(flat, spec.latent), _linear(spec.latent, flat)]
        # the transposed convolutions mirror the encoder's, each kernel applied at its input's positions
        for (a, b), at in zip(list(zip(widths[:-1], widths[1:]))[::-1], positions[::-1]):
            layers.append(_conv(b, a, 4, dims, at))
    elif isinstance(spec, (CNNClassifier, ContrastiveEncoder)):
        dims, size = len(shape) - 1, list(shape[1:])
        widths = [shape[0], *spec.channels]
        for a, b in zip(widths[:-1], widths[1:]):
            size = [(s + 1) // 2 for s in size]  # kernel 3, stride 2, padding 1
            layers.append(_conv(a, b, 3, dims, math.prod(size)))
        layers.append(_linear(spec.channels[-1] * math.prod(size), spec.latent))
        if isinstance(spec, CNNClassifier):
            layers.append(_linear(spec.latent, classes))
        else:
            layers += [_linear(spec.latent, spec.latent), _linear(spec.latent, spec.projection)]
    elif isinstance(spec, LinearRegression):
        layers.append((math.prod(shape), math.prod(shape)))  # w.x, no bias
    elif isinstance(spec, DiagonalQuadratic):
        layers.append((math.prod(shape), math.prod(shape)))  # h_j (w_j - z_j)^2 per coordinate, in the loss: w alone
    elif isinstance(spec, PythonModel):
        return factory_work(spec, shape, classes)
    else:
        raise TypeError(f"unknown model spec {type(spec).__name__}")
    macs, params = (sum(col) for col in zip(*layers))
    if isinstance(spec, ContrastiveEncoder):
        macs *= 2  # two augmented views of every sample
    return macs, params


def factory_work(spec: PythonModel, shape: tuple[int, ...], classes: int) -> tuple[int, int]:
    """(multiply-accumulates, parameters) of a factory model: its forward pass on one sample counted by torch's
    FLOP counter (matrix products and convolutions; two FLOPs a multiply-accumulate), its trainable parameters."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from batchlab.nets.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(spec, shape, classes)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros((1, *shape)))
    return max(1, counter.get_total_flops() // 2), sum(p.numel() for p in model.parameters() if p.requires_grad)


def rate_kind(spec) -> str:
    """The calibrated kind whose rates time a model: its own, or for a factory model the small CNN's (an
    approximation: its per-step, per-parameter and per-MAC costs stand in for the user's model)."""
    return "cnn" if isinstance(spec, PythonModel) else spec.kind


# ---------------------------------------------------------------- rates


@dataclass(frozen=True)
class Rate:
    """Seconds per training step of one model kind: fixed, per parameter, per multiply-accumulate of the batch."""

    step_s: float
    param_s: float
    mac_s: float

    def step(self, batch_size: int, macs: int, params: int) -> float:
        return self.step_s + self.param_s * params + self.mac_s * batch_size * macs


@dataclass
class Rates:
    """The rates of every calibrated model kind on one device, and where they come from."""

    device: str
    kinds: dict[str, Rate]
    source: str

    def for_kind(self, kind: str) -> Rate:
        if kind not in self.kinds:
            raise ValueError(f"{self.source}: no rate for model kind {kind!r} (has {sorted(self.kinds)})")
        return self.kinds[kind]


def read_rates(path: str | Path) -> Rates:
    """A rates file: {"device": "...", "kinds": {"dense_ae": {"step_s": ..., "param_s": ..., "mac_s": ...}, ...}}."""
    try:
        raw = json.loads(Path(path).read_text())
        kinds = {k: Rate(float(v["step_s"]), float(v["param_s"]), float(v["mac_s"])) for k, v in raw["kinds"].items()}
        return Rates(str(raw["device"]), kinds, f"rates file {path}")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such rates file") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a rates file ({type(err).__name__}: {err}); expected "
                         '{"device": ..., "kinds": {kind: {"step_s": ..., "param_s": ..., "mac_s": ...}}}') from None


def machine_key(device_setting: str) -> str:
    """What cached rates must match, known without importing torch: machine, device setting, torch, GPUs."""
    parts = [f"device={device_setting}", f"host={platform.node()}", f"cpu={platform.processor() or platform.machine()}"]
    try:
        parts.append(f"torch={metadata.version('torch')}")
    except metadata.PackageNotFoundError:
        parts.append("torch=none")
    if device_setting != "cpu":
        driver = Path("/proc/driver/nvidia/version")
        parts.append(f"nvidia={driver.read_text().splitlines()[0] if driver.is_file() else 'none'}")
        parts.append(f"visible={os.environ.get('CUDA_VISIBLE_DEVICES', 'all')}")
    return "|".join(parts)


def cache_file() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("batchlab")) / "rates.json"


def calibrate(kind: str, device: torch.device) -> Rate:
    """Time training steps of the kind's reference models (one thread) and solve for the three rates.

    Small model at batch size 1, large model at 1 and at CALIBRATION_BATCH: the large model's two batch
    sizes give mac_s, the two models at batch size 1 param_s, and the rest is step_s.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (small, small_shape), (large, large_shape) = REFERENCE[kind]
        t_small = _seconds_per_step(small, small_shape, 1, device)
        t_large = _seconds_per_step(large, large_shape, 1, device)
        t_batch = _seconds_per_step(large, large_shape, CALIBRATION_BATCH, device)
    finally:
        torch.set_num_threads(threads)
    w_small, p_small = model_work(small, small_shape, 10)
    w_large, p_large = model_work(large, large_shape, 10)
    mac_s = max(t_batch - t_large, 0.0) / ((CALIBRATION_BATCH - 1) * w_large)
    param_s = max(t_large - t_small - mac_s * (w_large - w_small), 0.0) / (p_large - p_small)
    return Rate(step_s=max(t_small - param_s * p_small - mac_s * w_small, 0.0), param_s=param_s, mac_s=mac_s)


def _seconds_per_step(spec, shape: tuple[int, ...], batch: int, device: torch.device) -> float:
    """Adam steps of a fresh model on random data: the fastest of a few blocks (other work only adds time)."""
    import torch

    from batchlab.training.adam import Adam
    from batchlab.nets.models import build_model
    from batchlab.nets.objectives import sample_loss_for

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(spec, shape, 10).to(device)
        loss_fn = sample_loss_for(spec, 0)
        optimizer = Adam(model.parameters(), lr=1e-4)  # the trainer's
        x = torch.rand((batch, *shape), device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        blocks = []
        for _ in range(1 + CALIBRATION_BLOCKS):  # the first block warms up
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(CALIBRATION_STEPS):
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model, x, y).mean().backward()
                optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            blocks.append((time.perf_counter() - start) / CALIBRATION_STEPS)
    return min(blocks[1:])


def machine_rates(device_setting: str, kinds: set[str], device: torch.device | None = None) -> Rates:
    """This machine's rates for the kinds: from the cache, calibrating (and caching) the kinds it lacks."""
    path, key = cache_file(), machine_key(device_setting)
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key, {})
    have = {k: Rate(**v) for k, v in entry.get("kinds", {}).items() if _is_rate(v)}
    missing = sorted(kinds - set(have))
    if missing:
        if device is None:
            from batchlab.training.device import resolve_device

            device = resolve_device(device_setting)
        started = time.perf_counter()
        have.update({kind: calibrate(kind, device) for kind in missing})
        print(f"calibrated {', '.join(missing)} on {device.type} in {time.perf_counter() - started:.1f} s "
              f"(cached in {path})", file=sys.stderr)
        entry = {"device": device_name(device), "measured": dt.date.today().isoformat(),
                 "kinds": {k: vars(r) for k, r in have.items()}}
        cache[key] = entry
        from batchlab import io

        io.write_json(cache, path)
    return Rates(entry["device"], have, f"calibrated {entry['measured']}, cached in {path}")


def _is_rate(entry: object) -> bool:
    """Whether a cached entry has exactly a Rate's fields (one from an older model of the cost is calibrated again)."""
    return isinstance(entry, dict) and set(entry) == {f.name for f in fields(Rate)} and all(
        isinstance(v, (int, float)) for v in entry.values()
    )


def device_name(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, 1 thread)"


# ---------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class CellCost:
    """One (study, batch size) cell: its runs, steps per run and estimated seconds (None: not estimable)."""

    study: str
    batch_size: int
    runs: int
    steps: int
    seconds: float | None
    to_target: bool = False  # a train-to-target cell, costed at its cap: an upper bound
    equal_steps: bool = False  # a cell of the equal-steps arm

    @property
    def arm(self) -> str:
        """Which of the study's arms the cell belongs to: sweep, to_target or equal_steps."""
        return "to_target" if self.to_target else "equal_steps" if self.equal_steps else "sweep"


def cell_costs(name: str, study: Study, rates: Rates | None) -> list[CellCost]:
    """Every cell of one runnable study (a plain study, or one cell of a scaling grid), its other arms' last."""
    cells = _sweep_costs(name, study, rates)
    if study.to_target is not None:
        grid = study.to_target.lr_tuning
        trials = 0 if grid is None else (grid.points + grid.extensions) * len(grid.tuning_seeds)
        view = study.to_target_view()
        trials += len(view.seeds) if study.to_target.rate_check is not None else 0  # the seeds again, at the other rate
        cells += [replace(c, to_target=True) for c in _sweep_costs(name, view, rates, len(view.seeds) + trials)]
    if study.equal_steps is not None:
        cells += [replace(c, equal_steps=True) for c in _sweep_costs(name, study.equal_steps_view(), rates)]
    return cells


def _sweep_costs(name: str, study: Study, rates: Rates | None, runs: int | None = None) -> list[CellCost]:
    """The cells of one arm; `runs` per cell when given (a rate-tuned train-to-target cell: its trials and seeds)."""
    data = study.data
    n_train = data.n_train()
    runs = runs or len(study.seeds) * len(study.optim.candidate_lrs())
    shape = sample_shape(data)
    work = model_work(study.model, shape, n_classes(data)) if shape else None
    rate = rates.for_kind(rate_kind(study.model)) if rates is not None and work else None
    cells = []
    for b in study.batch_sizes:
        steps = study.budget.steps(b, n_train)
        seconds = None if rate is None else runs * steps * rate.step(b, *work) + _measurement_s(study, b, steps, rate, work)
        cells.append(CellCost(name, b, runs, steps, seconds))
    return cells


def _measurement_s(study: Study, batch_size: int, steps: int, rate: Rate, work: tuple[int, int]) -> float:
    """Evaluation, sharpness and gradient-noise passes of a cell, from the same rate.

    A forward pass over a sample costs about a third of a trained sample (the backward pass does twice
    the work); a Hessian-vector product on the sharpness subset about two training steps on it; a
    per-example gradient about two trained samples plus writing a gradient as large as the model.
    """
    macs, params = work
    n = study.data.n_samples_total()
    n_train, n_val, _ = split_sizes(n, study.data.split)
    runs = len(study.seeds) * len(study.optim.candidate_lrs())
    evaluation = rate.mac_s * macs / 3 * (min(study.curve_points, steps) * n_val + 2 * n)
    subset = min(study.sharpness.samples, n_train)
    sharpness = 2 * study.sharpness.iters * rate.step(subset, macs, params) if subset else 0.0
    g = study.gradients
    n_eval = g.eval_size(study.data.n_train())
    per_checkpoint = n_eval * (2 * rate.mac_s * macs + rate.param_s * params) + g.spread_draws * sum(
        rate.step(size, macs, params) for size in g.spread_sizes(study.data.n_train())
    )
    gradients = min(g.seeds, len(study.seeds)) * len(g.checkpoints) * per_checkpoint
    return runs * (evaluation + sharpness) + gradients


def estimate(cfg: Config, rates: Rates | None) -> dict[str, list[CellCost]]:
    """Every cell's cost, by the config's study names (a scaling grid's cells under its own name)."""
    return {
        name: [c for cell_name, cell in study.variants(name).items() for c in cell_costs(cell_name, cell, rates)]
        for name, study in cfg.studies.items()
    }


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    hours = seconds / 3600
    return f"{hours:,.1f} h" if hours < 1e6 else f"{hours:.2g} h"


def _count(n: float) -> str:
    return f"{n:,.0f}" if n < 1e12 else f"{n:.3g}"


def describe(cfg: Config, costs: dict[str, list[CellCost]], rates: Rates | None, source: str) -> tuple[list[str], str | None]:
    """The lines to print (per study and in all) and the warning, if the estimate exceeds warn_above_hours."""
    where = "no rates" if rates is None else f"{rates.device}; {rates.source}"
    lines = [f"estimated cost ({where}):"]
    warning = None
    fixed_total, capped_total, cells = 0.0, 0.0, []
    for name, study_cells in costs.items():
        steps = sum(c.runs * c.steps for c in study_cells)
        known = [c for c in study_cells if c.seconds is not None]
        capped = [c for c in known if c.to_target]
        fixed = sum(c.seconds for c in known if not c.to_target)
        if len(known) < len(study_cells):
            time_text = "time not estimated (sample shape unknown before the data are made)"
        elif capped:
            time_text = (f"≈ {_duration(fixed)} for its {len(known) - len(capped)} fixed-budget cells and up to "
                         f"{_duration(sum(c.seconds for c in capped))} for its {len(capped)} train-to-target cells "
                         "(counted at their cap: an upper bound)")
        else:
            time_text = f"≈ {_duration(fixed)}"
        lines.append(f"  {name}: {_count(steps)} optimizer steps over {len(study_cells)} cells, {time_text}")
        caps = [c for c in study_cells if c.to_target]
        if caps:  # a batch size whose cap lies below the steps it needs cannot reach the target by construction
            by_caps: dict[str, list[str]] = {}  # a grid's cells of one training-set size share their caps
            for cell in dict.fromkeys(c.study for c in caps):
                text = ", ".join(f"batch size {c.batch_size}: {_count(c.steps)}" for c in caps if c.study == cell)
                by_caps.setdefault(text, []).append(cell)
            for text, cell_names in by_caps.items():
                of = "" if len(by_caps) == 1 else f" of {', '.join(cell_names)}"
                lines.append(f"    train-to-target caps{of} (updates per run): {text}")
            grid = cfg.studies[name].to_target.lr_tuning
            if grid is not None:
                lines.append(f"    learning rate tuned per batch size: up to {caps[0].runs} runs a cell ("
                             f"{grid.points} + up to {grid.extensions} rates x {len(grid.tuning_seeds)} tuning "
                             f"seed{'s' if len(grid.tuning_seeds) > 1 else ''}, then the measured seeds)")
        pilot, late = _advise_lines(cfg.studies[name], rates)
        lines += pilot
        warning = warning or late
        arm = [c for c in study_cells if c.equal_steps]
        if arm:
            lines.append(f"    equal-steps arm: {_count(arm[0].steps)} updates per run at batch sizes "
                         + ", ".join(str(c.batch_size) for c in arm))
        fixed_total += fixed
        capped_total += sum(c.seconds for c in capped)
        cells += known
    more = f", and up to {_duration(capped_total)} more for the train-to-target cells at their caps" if capped_total else ""
    lines.append(
        f"  all: ≈ {_duration(fixed_total)} of training and measurement, one job at a time{more} "
        "(not counted: the SVMs and each job's start-up; jobs side by side divide it)"
    )
    total = fixed_total + capped_total
    if total > cfg.warn_above_hours * 3600:
        top = sorted(cells, key=lambda c: c.seconds, reverse=True)[:3]
        named = "; ".join(f"{c.study}{' to target' if c.to_target else ''} batch size {c.batch_size} ({c.runs} runs x {_count(c.steps)} steps, "
                          f"{_duration(c.seconds)}{' at its cap' if c.to_target else ''})" for c in top)
        bound = "up to " if capped_total else ""
        warning = (warning + "\n" if warning else "") + (
            f"warning: {source} is estimated at {bound}{_duration(total)}, above warn_above_hours "
            f"({cfg.warn_above_hours:g} h). The costliest cells: {named}"
        )
    return lines, warning


def _advise_lines(study: Study, rates: Rates | None) -> tuple[list[str], str | None]:
    """The advise pilot's schedule and estimated cost (batchlab.training.halving.estimate), and a warning when the
    estimate exceeds its cap in minutes."""
    a = study.advise
    if a is None:
        return [], None
    view, sizes = study.to_target_view(), a.sizes(study)
    grid = study.to_target.lr_tuning
    n_rates = grid.points if grid is not None else len(view.optim.candidate_lrs())
    head = f"    advise pilot: {len(sizes)} batch sizes x {n_rates} rate{'s' if n_rates > 1 else ''}, eta {a.eta}, cap {a.minutes:g} min"
    shape = sample_shape(study.data)
    rate = rates.for_kind(rate_kind(study.model)) if rates is not None and shape else None
    if rate is None:
        return [head + ": cost not estimated"], None
    macs, params = model_work(study.model, shape, n_classes(study.data))
    _, n_val, _ = split_sizes(study.data.n_samples_total(), study.data.split)
    e = halving.estimate(sizes, n_rates, a.eta, a.minutes, lambda b: rate.step(b, macs, params), rate.mac_s * macs / 3 * n_val,
                         lambda b: view.budget.steps(b, study.data.n_train()), view.curve_points)
    steps = ", ".join(f"{b}: {_count(s)}" for b, s in e["first_rung_steps"].items())
    lines = [f"{head}: rungs of {', '.join(map(str, e['rungs']))} candidates, {e['seconds'][0]:.3g} s each at first "
             f"(steps at batch size {steps}); ≈ {_duration(e['total_s'])} in all, the throughput measurement "
             f"({_duration(e['measure_s'])}) included; it stops early once every survivor has reached the target"]
    late = None if e["total_s"] <= a.minutes * 60 else (
        f"warning: the advise pilot is estimated at {_duration(e['total_s'])}, above its cap of {a.minutes:g} min: the "
        "cap will stop it before its schedule ends (raise advise.minutes, or drop batch sizes)")
    return lines, late


def print_estimate(
    cfg: Config, device: torch.device | None = None, rates_file: str | None = None, source: str = "the config",
    stream=None,
) -> dict[str, list[CellCost]]:
    """Print each study's optimizer steps and estimated time; warn (stderr) above cfg.warn_above_hours.

    Returns every cell's cost, by config study name.
    """
    rates_file = rates_file or os.environ.get(RATES_ENV)
    kinds = {rate_kind(study.model) for study in cfg.studies.values()}
    rates = read_rates(rates_file) if rates_file else machine_rates(cfg.device, kinds, device)
    costs = estimate(cfg, rates)
    lines, warning = describe(cfg, costs, rates, source)
    print("\n".join(lines), file=stream or sys.stdout, flush=True)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return costs
