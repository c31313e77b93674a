"""Gradient noise measured at the checkpoints of a cell's runs: B_simple over training and gradient spread.

The spread is measured two ways. The probe sweep (probe "sweep") draws minibatches of several sizes
without replacement from the fixed evaluation subset, at most a quarter of it so that draws stay
mostly distinct: on one model it falls as B^-1/2 by construction, the theory check. The run's own
batch size (probe "own") is what Vaessen & van Leeuwen compare across training batch sizes: minibatches
of the size the run trained with, drawn with replacement from the whole training split (i.i.d. draws
from it, so no finite-population factor shrinks the spread at large batch sizes, and batch sizes
beyond the subset are measured too).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from batchlab.config import GradientNoise, Study
from batchlab.data import Dataset
from batchlab.measure.gradients import gradient_spread, per_example_stats, two_batch_stats
from batchlab.nets.factory import per_example_problem
from batchlab.nets.models import build_model
from batchlab.nets.objectives import sample_loss_for
from batchlab.seeding import derive_seed, numpy_rng


NO_JACKKNIFE = {"b_simple_log_se": float("nan"), "jackknife_groups": 0, "jackknife_unstable": 0}


def eval_subset(data: Dataset, size: int) -> np.ndarray:
    """The fixed evaluation examples: one seeded subset of the training split, shared by every run of a study."""
    train = data.indices("train")
    return np.sort(numpy_rng("gradient-eval-subset").choice(train, size=size, replace=False))


def measure_cell(
    study: Study,
    spec: GradientNoise,
    data: Dataset,
    batch_size: int,
    checkpoints: dict[str, dict[str, dict[str, torch.Tensor]]],
    device: torch.device,
    measure_init: bool = True,
    spread: bool = True,
    noise: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Noise statistics (one row per seed and checkpoint; none without `noise`) and gradient spread (one row per
    probe; none without `spread`, and only the run's own batch size without `noise`: the equal-steps arm's job).

    A checkpoint's step is the one the trainer recorded (checkpoints["steps"]; a train-to-target run's last
    checkpoint is where it stopped), else its fraction of the budget's steps. The weights at
    initialisation (fraction 0) depend on the seed alone, the same for every batch size,
    so the workflow measures them in one cell per study (measure_init) and skips them elsewhere.
    """
    n_train = len(data.indices("train"))
    idx = eval_subset(data, spec.eval_size(n_train))
    x, y = _tensors(data, idx, study.is_classifier, device)
    x_train, y_train = _tensors(data, data.indices("train"), study.is_classifier, device)
    contrastive = study.model.kind == "contrastive"
    unsupported: str | None = None  # a factory model's reason torch.func takes no per-example gradients ('' if it does)
    steps = study.budget.steps(batch_size, n_train)
    stats_rows, spread_rows = [], []
    for seed in study.seeds[: spec.seeds]:
        recorded = checkpoints.get("steps", {}).get(f"seed{seed}", {})
        for fraction, state in sorted(checkpoints[f"seed{seed}"].items(), key=lambda kv: float(kv[0])):
            f = float(fraction)
            if f == 0.0 and not measure_init:
                continue
            model = build_model(study.model, tuple(data.x.shape[1:]), data.n_classes()).to(device)
            model.load_state_dict(state)
            model.eval()
            key = {"batch_size": batch_size, "seed": seed, "fraction": f, "step": int(recorded.get(fraction, round(f * steps)))}
            loss_fn = sample_loss_for(study.model, derive_seed(seed, batch_size, f, "gradient-noise-augment"))
            if not noise:
                spread_rows += _own_rows(key, model, loss_fn, x_train, y_train, spec, None)
                continue
            with torch.no_grad():
                eval_loss = loss_fn(model, x, y).mean().item()
            gen = torch.Generator().manual_seed(derive_seed(seed, batch_size, f, "gradient-noise"))
            if unsupported is None:  # tried once per cell, on the first checkpoint's model
                per_example = study.model.kind == "python" and spec.method == "per_example"
                unsupported = per_example_problem(model, loss_fn, x[:8], y[:8]) if per_example else ""
            if contrastive or unsupported:
                # In-batch negatives make an example's loss depend on its batch: per-example gradients
                # and the two-batch estimator's E|G_B|^2 = |G|^2 + tr(Sigma)/B do not apply. A factory model
                # torch.func cannot take per-example gradients of is skipped, with the reason as its method.
                noise = {"grad_sq": float("nan"), "trace_sigma": float("nan"), "b_simple": float("nan"), **NO_JACKKNIFE}
                param_var = None
            elif spec.method == "per_example":
                st = per_example_stats(model, loss_fn, x, y, spec.chunk_size)
                noise = {"grad_sq": st.grad_sq, "trace_sigma": st.trace_sigma, "b_simple": st.b_simple,
                         "b_simple_log_se": st.jackknife.log_se, "jackknife_groups": st.jackknife.groups,
                         "jackknife_unstable": st.jackknife.unstable}
                param_var = st.param_var
            else:  # no jackknife: the two-batch estimator keeps no per-example sums
                noise = two_batch_stats(model, loss_fn, x, y, *spec.two_batch_sizes, spec.two_batch_draws, gen)
                noise = {**{k: noise[k] for k in ("grad_sq", "trace_sigma", "b_simple")}, **NO_JACKKNIFE}
                param_var = None
            method = "not defined (in-batch loss)" if contrastive else f"skipped: {unsupported}" if unsupported else spec.method
            stats_rows.append({**key, "method": method, "eval_samples": len(x), "eval_loss": eval_loss, **noise})
            if not spread:
                continue
            sweep = gradient_spread(
                model, loss_fn, x, y, spec.spread_sizes(n_train), spec.spread_draws, gen, replace=False, param_var=param_var
            ).assign(probe="sweep", pool=f"evaluation subset ({len(x)}), without replacement")
            spread_rows += _rows(key, sweep) + _own_rows(key, model, loss_fn, x_train, y_train, spec, param_var)
    return pd.DataFrame(stats_rows), pd.DataFrame(spread_rows)


def _rows(key: dict, table: pd.DataFrame) -> list[dict]:
    return [{**key, **row} for row in table.rename(columns={"batch_size": "probe_batch_size"}).to_dict("records")]


def _own_rows(key: dict, model, loss_fn, x_train, y_train, spec: GradientNoise, param_var) -> list[dict]:
    """The spread at the run's own batch size: its minibatches drawn with replacement from the training split."""
    batch_size, seed, f = key["batch_size"], key["seed"], key["fraction"]
    own_gen = torch.Generator().manual_seed(derive_seed(seed, batch_size, f, "gradient-spread-own"))
    own = gradient_spread(
        model, loss_fn, x_train, y_train, [batch_size], spec.spread_draws, own_gen, replace=True, param_var=param_var
    ).assign(probe="own", pool=f"training split ({len(x_train)}), with replacement")
    return _rows(key, own)


def _tensors(data: Dataset, idx: np.ndarray, classifier: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of the given samples on the device (integer class labels for classifiers)."""
    x = torch.as_tensor(data.x[idx], device=device)
    y = torch.as_tensor(data.labels[data.target][idx], device=device)
    return x, y.long() if classifier else y
