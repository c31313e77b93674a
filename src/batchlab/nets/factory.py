"""A model of the user's own (model kind `python`): built by the factory the config names, and what it can do.

The factory is called as `factory(in_shape, n_classes, **args)` and must return a torch.nn.Module. The checks
here are what the trainers and later steps need of it: no BatchNorm (its statistics depend on the batch, the
variable under study), no buffer that a training step changes, parameters that torch.func can stack across runs
(the batched engine) and differentiate per example (the gradient statistics), and an `encode` method for the
downstream embedding.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from batchlab.config import PythonModel, import_factory

SampleLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]


def build_factory_model(spec: PythonModel, in_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The module `spec.factory(in_shape, n_classes, **spec.args)` returns; a ValueError naming the factory when it
    raises or returns something other than an nn.Module."""
    factory = import_factory(spec.factory)
    try:
        model = factory(tuple(in_shape), int(n_classes), **spec.args)
    except Exception as err:  # the user's code: report it with the factory's name and the call
        raise ValueError(
            f"factory {spec.factory!r} failed when called as factory({tuple(in_shape)}, {n_classes}, "
            f"**{spec.args}): {type(err).__name__}: {err}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"factory {spec.factory!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def batch_norm_layers(model: nn.Module) -> list[str]:
    """The names of the model's BatchNorm layers."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def changing_buffers(model: nn.Module, x: Tensor) -> list[str]:
    """The buffers a training-mode forward pass on x changes (a BatchNorm's running statistics, say); the
    model's buffers are restored afterwards."""
    before = {n: b.detach().clone() for n, b in model.named_buffers()}
    if not before:
        return []
    was_training = model.training
    model.train()
    try:
        with torch.no_grad():
            model(x)
        changed = [n for n, b in model.named_buffers() if n in before and not torch.equal(b, before[n])]
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                if n in before:
                    b.copy_(before[n])
        model.train(was_training)
    return changed


def stack_problem(model: nn.Module, loss_fn: SampleLoss, x: Tensor, y: Tensor) -> str:
    """Why the batched engine cannot train this model ('' when it can): as the engine does, it stacks the
    buffer-free parameters of two runs, runs them under vmap on their samples laid end to end, and takes the
    gradient of the summed loss with autograd."""
    buffers = [n for n, _ in model.named_buffers()]
    if buffers:
        return f"the batched engine stacks models without buffers only; this one has {', '.join(buffers[:5])}"
    params = {n: torch.stack([p.detach(), p.detach()]).requires_grad_() for n, p in model.named_parameters()}

    def both(flat: Tensor) -> Tensor:
        forward = lambda p, xb: functional_call(model, p, (xb,))  # noqa: E731
        out = vmap(forward, randomness="different")(params, flat.reshape(2, -1, *flat.shape[1:]))
        return out.reshape(-1, *out.shape[2:])

    try:
        with torch.enable_grad():
            loss = loss_fn(both, torch.cat([x, x]), torch.cat([y, y])).sum()
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    except Exception as err:  # whatever torch.func refuses in the user's module
        return f"torch.func cannot stack this model across runs: {type(err).__name__}: {_first_line(err)}"
    bad = [n for n, g in zip(params, grads) if g is not None and not torch.isfinite(g).all()]
    return f"the stacked gradient of {bad[0]} is not finite" if bad else ""


def per_example_problem(model: nn.Module, loss_fn: SampleLoss, x: Tensor, y: Tensor) -> str:
    """Why per-example gradients through torch.func (vmap over grad, as the gradient statistics take them) fail for
    this model ('' when they work)."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        bound = lambda v: functional_call(model, (p, buffers), (v,))  # noqa: E731
        return loss_fn(bound, xi[None], yi[None])[0]

    try:
        vmap(grad(one), in_dims=(None, 0, 0), randomness="different")(params, x, y)
    except Exception as err:  # whatever torch.func refuses in the user's module
        return f"torch.func cannot take per-example gradients of this model: {type(err).__name__}: {_first_line(err)}"
    return ""


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "(no message)"
