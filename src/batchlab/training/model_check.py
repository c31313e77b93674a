"""The check a factory model (model kind `python`) gets when its config is validated, before any job.

Each one is built for its study's data and a few samples are run through it and the study's loss: a model whose
output does not fit the loss or the data, that holds BatchNorm or buffers a training step changes, or whose
factory fails, is refused with the study and field named. What later steps cannot do with it (stack it in the
batched engine, take per-example gradients, embed with `encode`) is said, and skipped there with the reason.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from batchlab.config import BratsData, Config, ConfigError, FileData, Study

PROBE_SAMPLES = 8
DEFAULT_LATENT = 32  # the PCA baseline's width for a model without encode, unless the config gives one


@dataclass
class ModelFacts:
    """What the check found: the embedding's width (None without encode) and notes for the user."""

    latent: int | None
    notes: list[str] = field(default_factory=list)


def probe_batch(data) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(x, y, n_classes): the first samples of a user's file, or for generated data values in [0, 1) of the data's
    sample shape (a seeded draw) with every class in turn; None where the shape is known only once the data are
    made (ehr_codes)."""
    from batchlab.training.cost import sample_shape

    if isinstance(data, FileData):
        summary = data.summary()
        classes = summary.n_classes if data.target_task() == "classification" else 1
        return summary.head, summary.head_labels, classes
    shape = (len(data.modalities), data.size, data.size) if isinstance(data, BratsData) else sample_shape(data)
    if shape is None:
        return None
    task = data.target_task()
    classes = {"digits": 10, "mnist1d": 10}.get(data.name, 2) if task == "classification" else 1
    x = np.random.default_rng(0).random((PROBE_SAMPLES, *shape), dtype=np.float32)
    y = np.arange(PROBE_SAMPLES) % classes if task == "classification" else np.zeros(PROBE_SAMPLES, np.float32)
    return x, y, classes


def check_study_model(study: Study) -> ModelFacts:
    """Build the study's factory model and run a probe batch through it and its loss; a ValueError says what
    does not fit. The checks are the ones the module docstring lists."""
    import torch

    from batchlab.nets.factory import batch_norm_layers, changing_buffers, per_example_problem, stack_problem
    from batchlab.nets.models import build_model
    from batchlab.nets.objectives import sample_loss_for

    spec = study.model
    probe = probe_batch(study.data)
    if probe is None:
        return ModelFacts(spec.latent, [f"not checked here: data {study.data.name!r} has a sample shape known only "
                                        "once the data are made; the first training job builds it"])
    x_np, y_np, classes = probe
    x = torch.as_tensor(x_np)
    y = torch.as_tensor(y_np).long() if study.is_classifier else torch.as_tensor(y_np)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(spec, tuple(x.shape[1:]), classes)
    norms = batch_norm_layers(model)
    if norms:
        raise ValueError(f"BatchNorm layer(s) {', '.join(map(repr, norms[:5]))}: their statistics depend on the batch, the "
                         "variable under study; use LayerNorm, GroupNorm or none")
    changed = changing_buffers(model, x)
    if changed:
        raise ValueError(f"buffer(s) {', '.join(map(repr, changed[:5]))} change in a training step: state that depends on the "
                         "batches seen is not supported; keep such state out of the model")
    model.train()
    try:
        out = model(x)
    except Exception as err:  # the user's forward pass
        raise ValueError(f"the model's forward pass fails on a batch of shape {tuple(x.shape)} ({x.dtype}): "
                         f"{type(err).__name__}: {err}") from None
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        got = f"a {out.dtype} tensor" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise ValueError(f"the model's forward pass returns {got}; it must return one floating-point tensor")
    if out.dtype != x.dtype:
        raise ValueError(f"the model's output is {out.dtype} but the data are {x.dtype}; keep the model in {x.dtype}")
    want = (len(x), classes) if study.is_classifier else tuple(x.shape)
    if tuple(out.shape) != want:
        what = f"[batch, n_classes] = {list(want)} logits (task classifier)" if study.is_classifier else (
            f"the input's shape {list(want)} (task autoencoder: it reconstructs the input)")
        raise ValueError(f"the model's output has shape {list(out.shape)}; it must have {what}")
    loss_fn = sample_loss_for(spec, 0)
    losses = loss_fn(model, x, y)
    if tuple(losses.shape) != (len(x),) or not torch.isfinite(losses).all():
        raise ValueError(f"the loss of the model's output is {losses.detach()!r}, not one finite value per sample")
    facts = ModelFacts(None)
    if callable(getattr(model, "encode", None)):
        with torch.no_grad():
            z = model.encode(x)
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or len(z) != len(x):
            got = list(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"the model's encode(x) returns {got}; the downstream step needs [batch, width]")
        if spec.latent is not None and spec.latent != z.shape[1]:
            raise ValueError(f"model.latent is {spec.latent} but encode(x) is {z.shape[1]} wide; leave latent out")
        facts.latent = int(z.shape[1])
    else:
        facts.latent = spec.latent or DEFAULT_LATENT
        facts.notes.append("no encode method: the downstream SVM is skipped (recorded in its table)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        stack = stack_problem(model, loss_fn, x, y)
        per_example = per_example_problem(model.eval(), loss_fn, x, y)
    if stack:
        facts.notes.append(f"the reference trainer will train it where the batched engine would ({stack})")
    if per_example:
        facts.notes.append(f"its gradient statistics will be skipped ({per_example})")
    return facts


def check_models(cfg: Config, source: str, stream=None) -> Config:
    """Check every factory model of the config (check_study_model), print what later steps will skip, and fill in
    each one's measured embedding width (model.latent). A model that does not fit is a ConfigError naming the
    file, the study and the field."""
    for name, study in list(cfg.studies.items()):
        if study.model.kind != "python":
            continue
        try:
            facts = check_study_model(study)
        except ValueError as err:
            named = "" if study.model.factory in str(err) else f" (factory {study.model.factory!r})"
            raise ConfigError(f"{source}: study {name!r}, field 'model'{named}: {err}") from None
        for note in facts.notes:
            print(f"{name}: model {study.model.factory}: {note}", file=stream or sys.stderr)
        cfg.studies[name] = study.model_copy(update={"model": study.model.model_copy(update={"latent": facts.latent})})
    return cfg


def fallback_reason(study: Study, data, device) -> str:
    """Why the batched engine cannot train the study's model ('' when it can): only a factory model (kind python)
    may be one torch.func cannot stack, tried on a few training samples (batchlab.nets.factory.stack_problem)."""
    if study.model.kind != "python":
        return ""
    import torch

    from batchlab.nets.factory import stack_problem
    from batchlab.nets.objectives import sample_loss_for
    from batchlab.training.run import init_model

    idx = data.indices("train")[:PROBE_SAMPLES]
    x = torch.as_tensor(data.x[idx], device=device)
    y = torch.as_tensor(data.labels[data.target][idx], device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = init_model(study, data, 0).to(device)
        return stack_problem(model, sample_loss_for(study.model, 0), x, y.long() if study.is_classifier else y)
