"""The target of steps-to-target: the loss every batch size is asked to reach, and the data's own baseline.

Four kinds (config: `steps_to_target.kind`), each a rule a user can reason about:
- value: a loss given in the config;
- fraction: initial - value (initial - best), the share `value` of the best run's improvement from
  the mean initial loss;
- within_best: best (1 + value), within 100 value % of the best run's final loss;
- baseline_fraction: baseline - value (baseline - best), the share `value` of the best run's
  improvement below the data's baseline: the loss of the best constant prediction fitted on the
  training split (each feature's mean for an autoencoder, the class frequencies for a classifier, the mean of
  y for linear regression; for the NQM quadratic the zero model, its initial loss).
`best` is the lowest metric at any run's last logged step. Metrics are lower-is-better losses.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

KINDS = ("value", "fraction", "within_best", "baseline_fraction")
SPLITS = {"val_loss": "val", "train_loss": "train"}


def curve_ends(curves: pd.DataFrame, metric: str, run_keys=("batch_size", "seed")) -> tuple[float, float]:
    """Mean over runs of the metric at each run's first logged step, and the lowest at any run's last one."""
    keys = list(run_keys)
    runs = curves.sort_values([*keys, "step"], kind="stable").groupby(keys, sort=False)
    initial = runs.nth(0)[metric].astype(float)
    final = runs.nth(-1)[metric].astype(float)
    initial, final = initial[np.isfinite(initial)], final[np.isfinite(final)]
    if initial.empty or final.empty:
        raise ValueError(f"no finite {metric!r} values to resolve the target")
    return float(initial.mean()), float(final.min())


def resolve_target(
    curves: pd.DataFrame, metric: str, kind: str, value: float, baseline: float = math.nan, run_keys=("batch_size", "seed")
) -> float:
    """The target value of `metric` for a target kind (see the module's docstring); baseline for baseline_fraction."""
    if kind not in KINDS:
        raise ValueError(f"target kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "value":
        return float(value)
    initial, best = curve_ends(curves, metric, run_keys)
    if kind == "fraction":
        return initial - value * (initial - best)
    if kind == "within_best":
        return best * (1 + value)
    _below_baseline(best, baseline, f"the best run's final {metric} ({best:.4g})", "a baseline_fraction target",
                    "choose another steps_to_target.kind")
    return baseline - value * (baseline - best)


def _below_baseline(loss: float, baseline: float, what: str, target: str, instead: str) -> None:
    """A share of an improvement below the baseline needs a baseline, and a loss below it."""
    if not math.isfinite(baseline):
        raise ValueError(f"{target} needs the data's baseline loss")
    if loss >= baseline:
        raise ValueError(
            f"{what} is not below the data's baseline {baseline:.4g} (the best constant prediction): {target} is "
            f"undefined; {instead}"
        )


def constant_prediction_loss(data, model_spec, split: str) -> float:
    """Loss on `split` of the best constant prediction fitted on the training split, by the model's own loss.

    Autoencoders predict each feature's training mean (the minimiser of BCE and of MSE among constants),
    classifiers the training class frequencies, linear regression the training mean of y (its loss on the
    training split is half the variance of y). The NQM quadratic predicts a constant whatever it learns (its w):
    its baseline is the zero model w = 0, where every run starts (the initial loss, d scale^2 / 2 + d sigma^2 / 2,
    which the linear model's mean of y also costs in expectation), not the training mean of z, which is w* up to
    sampling error and which no SGD run beats. Where the loss takes a log of them (BCE, cross-entropy)
    they count half an extra observation of each outcome ((sum + 1/2) / (n + 1) per feature, (n_k + 1/2) /
    (n + K/2) per class), so a value never seen in training costs a finite loss. The prediction goes
    through the same per-sample loss training uses (batchlab.nets.objectives): the baseline is in the curves' units.
    """
    import torch

    from batchlab.config import is_classifier
    from batchlab.nets.objectives import sample_loss_for

    if model_spec.kind == "contrastive":
        raise ValueError("a contrastive loss has no constant prediction: the data define no baseline for it")
    train, part = data.indices("train"), data.indices(split)
    n = len(train)
    x = torch.as_tensor(data.x[part], dtype=torch.float64)
    y = torch.as_tensor(data.labels[data.target][part])
    if is_classifier(model_spec):
        counts = np.bincount(data.labels[data.target][train].astype(int), minlength=data.n_classes())
        output = torch.as_tensor(np.log((counts + 0.5) / (n + 0.5 * len(counts))))
        y = y.long()
    elif model_spec.kind == "linear":  # the mean of y, whose half squared error is half the variance
        output = torch.as_tensor(data.labels[data.target][train], dtype=torch.float64).mean()
        y = y.double()
    elif model_spec.kind == "quadratic":  # the zero model, where every run starts
        output = torch.zeros(x.shape[1:], dtype=torch.float64)
        y = y.double()
    else:
        total = torch.as_tensor(data.x[train], dtype=torch.float64).sum(0)
        if model_spec.loss == "bce":  # the model's output is a logit
            mean = (total + 0.5) / (n + 1)
            output = mean.log() - (1 - mean).log()
        elif model_spec.output == "sigmoid":
            mean = total / n
            output = mean.log() - (1 - mean).log()  # sigmoid(+-inf) is exactly 1 or 0
        else:
            output = total / n

    def constant(inputs: torch.Tensor) -> torch.Tensor:
        return output.expand(len(inputs), *output.shape)

    with torch.no_grad():
        return float(sample_loss_for(model_spec)(constant, x, y).mean())


def stop_target(kind: str, value: float, baseline: float = math.nan, pilot: float = math.nan) -> float:
    """The validation loss a train-to-target run stops at, known before it trains (config: `to_target`).

    value: the loss itself; baseline_ratio: value x the data's baseline; pilot_fraction: baseline - value x
    (baseline - pilot), the share `value` of the pilot's improvement below the baseline (1: the pilot's loss).
    """
    if kind == "value":
        return float(value)
    if not math.isfinite(baseline):
        raise ValueError(f"a {kind} target needs the data's baseline loss")
    if kind == "baseline_ratio":
        return float(value * baseline)
    if kind != "pilot_fraction":
        raise ValueError(f"to_target.kind must be value, baseline_ratio or pilot_fraction, got {kind!r}")
    if not math.isfinite(pilot):
        raise ValueError("a pilot_fraction target needs the pilot's final validation loss, and it is not finite")
    _below_baseline(pilot, baseline, f"the pilot's final validation loss ({pilot:.4g}, the fixed-budget sweep's smallest "
                    "batch size)", "a pilot_fraction target", "use kind value or baseline_ratio, or a longer budget")
    return float(baseline - value * (baseline - pilot))


def pilot_loss(runs: pd.DataFrame) -> float:
    """The pilot: the mean final validation loss over the seeds of the smallest batch size of a runs table.

    Diverged runs (NaN loss) are left out; NaN when none is left."""
    smallest = runs[runs["batch_size"] == runs["batch_size"].min()]
    losses = smallest["val_loss"].astype(float)
    losses = losses[np.isfinite(losses)]
    return float(losses.mean()) if len(losses) else math.nan


def stop_at(spec, study, name: str, data_path: str, pilot_path: str | None):
    """The StopAt a train-to-target cell (and the advise pilot) trains to, from the config's to_target block `spec`,
    the data set at `data_path` (its baseline) and the pilot_fraction pilot's runs.parquet; the target is written to
    stderr. Raises ValueError naming the study and field when the target cannot be set."""
    import sys

    from batchlab.data import load_dataset
    from batchlab.training.run import StopAt

    baseline = math.nan if spec.kind == "value" else constant_prediction_loss(load_dataset(data_path), study.model, "val")
    pilot = pilot_loss(pd.read_parquet(pilot_path)) if pilot_path else math.nan
    try:
        value = stop_target(spec.kind, spec.value, baseline, pilot)
    except ValueError as err:
        raise ValueError(f"study {name!r}, field 'to_target': {err}") from None
    half_life = None if spec.weight_averaging is None else spec.weight_averaging.half_life
    averaged = "" if half_life is None else f", checked on the weights' moving average (half-life {half_life:g} of the steps)"
    print(f"batchlab: to target: validation loss {value:.6g} ({spec.describe()}; baseline {baseline:.6g}, "
          f"pilot {pilot:.6g}){averaged}", file=sys.stderr, flush=True)
    return StopAt(value, average_half_life=half_life)
