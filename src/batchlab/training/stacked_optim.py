"""Adam and SGD with momentum, written functionally over parameters stacked along a leading run axis.

Each of the K runs has its own learning rate (a [K] tensor, broadcast as [K, 1, ...]) and its own
moments. The element-wise operations are torch's own (`_single_tensor_adam`, `_single_tensor_sgd`) in
the same order, so a run's update has the same bits as torch.optim's: Adam's bias corrections are
taken from a table computed with the same Python float arithmetic, then selected by a step tensor
(`index_select`: indexing with a 0-dim tensor would read it back to the host, a sync that breaks
CUDA-graph capture), which keeps the step free of host values. SGD's `param.add_(grad, alpha=-lr)`
is a fused multiply-add that a per-run lr tensor cannot express, so with lr tensors SGD agrees with
torch to rounding; with a Python-float lr (one run, eager) it is bitwise the same.

`fused_update_` is the fast path on a GPU: torch's fused Adam / SGD kernels (what torch.optim's
fused=True runs), in place, one launch per group of runs with equal learning rates over every
parameter. They compute the bias corrections in the kernel's own precision, so they agree with
`update` to float32 rounding, not bitwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from batchlab.training.adam import second_moment_root
from batchlab.config import Optim

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which the reference trainer uses

Tensors = dict[str, Tensor]


def bias_correction_table(device: torch.device, betas: tuple[float, float] = BETAS) -> Tensor:
    """[L, 2] float64: 1 - beta1**step and sqrt(1 - beta2**step) for step 0..L-1, the reference's
    Python arithmetic; L is where both reach exactly 1.0, so later steps read the last row."""
    rows, step = [(1.0, 1.0)], 1
    while True:
        row = (1 - betas[0] ** step, (1 - betas[1] ** step) ** 0.5)
        rows.append(row)
        if row == (1.0, 1.0):
            return torch.tensor(rows, dtype=torch.float64, device=device)
        step += 1


def lr_now(step: Tensor, peak: Tensor, n_warmup: int) -> Tensor:
    """schedule.lr_at on device: [K] float64 learning rates of the 1-based step tensor."""
    if n_warmup <= 0:
        return peak
    s = step.to(torch.float64)
    return torch.where(s > n_warmup, peak, peak * s / n_warmup)


def equal_runs(lrs: list[float]) -> list[tuple[int, int]]:
    """(start, stop) of each run of consecutive equal learning rates (a cell's runs are ordered by rate)."""
    groups, start = [], 0
    for i in range(1, len(lrs) + 1):
        if i == len(lrs) or lrs[i] != lrs[start]:
            groups.append((start, i))
            start = i
    return groups


def fused_update_(
    optim: Optim, params: Tensors, grads: Tensors, state: dict[str, Tensors], step: Tensor, lr: Tensor,
    groups: list[tuple[int, int]],
) -> None:
    """One step of every run in place by torch's fused kernels. `step`: 0-dim int64 (the step being
    taken, 1-based); `lr`: [K] learning rates, equal within each (start, stop) group of `groups`.
    SGD's momentum buffers start at zero, so `momentum * 0 + grad` is the first step's buffer, as torch's."""
    names = list(params)
    grads = {n: _in_layout_of(params[n], g) for n, g in grads.items()}
    rates = lr.to(torch.float32)
    steps = [step.to(torch.float32)] * len(names)
    for lo, hi in groups:
        part = lambda d: [d[n][lo:hi] for n in names]  # noqa: E731 - views: the kernels write the stacked tensors
        if optim.name == "adam":
            torch._fused_adam_(
                part(params), part(grads), part(state["exp_avg"]), part(state["exp_avg_sq"]), [], steps,
                lr=rates[lo], beta1=BETAS[0], beta2=BETAS[1], weight_decay=optim.weight_decay, eps=EPS,
                amsgrad=False, maximize=False,
            )
        else:
            torch._fused_sgd_(
                part(params), part(grads), part(state["momentum_buffer"]) if optim.momentum else [],
                weight_decay=optim.weight_decay, momentum=optim.momentum, lr=rates[lo], dampening=0.0,
                nesterov=False, maximize=False, is_first_step=False,
            )


def _in_layout_of(param: Tensor, grad: Tensor) -> Tensor:
    """The gradient laid out in memory as its parameter is: the fused kernels read all four tensors flat
    (on CUDA they refuse differing strides; on CPU they would silently pair the wrong elements)."""
    return grad if grad.stride() == param.stride() else torch.empty_like(param).copy_(grad)


def adopt_layout(tensors: Tensors, like: Tensors) -> Tensors:
    """`tensors` stored in the memory layout of `like` (same shapes), where that layout is dense."""
    out = {}
    for n, t in tensors.items():
        g = like[n]
        out[n] = t if t.stride() == g.stride() or not _is_dense(g) else torch.empty_strided(
            t.shape, g.stride(), dtype=t.dtype, device=t.device).copy_(t)
    return out


def _is_dense(t: Tensor) -> bool:
    """Whether t's elements fill its storage span exactly once (a permutation of a contiguous layout)."""
    dims = sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz != 1)
    expected = 1
    for st, sz in dims:
        if st != expected:
            return False
        expected *= sz
    return True


def init_state(optim: Optim, params: Tensors) -> dict[str, Tensors]:
    """Zeroed moments (Adam) or momentum buffers (SGD), shaped like the stacked parameters."""
    if optim.name == "adam":
        return {"exp_avg": _zeros(params), "exp_avg_sq": _zeros(params)}
    return {"momentum_buffer": _zeros(params)} if optim.momentum else {}


def _zeros(params: Tensors) -> Tensors:
    return {n: torch.zeros_like(p, memory_format=torch.preserve_format) for n, p in params.items()}


def _per_run(value: Tensor, like: Tensor) -> Tensor:
    """A [K] vector shaped [K, 1, ...] to broadcast over one stacked parameter, in its dtype."""
    return value.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def update(
    optim: Optim, params: Tensors, grads: Tensors, state: dict[str, Tensors], step, lr, table: Tensor | None = None,
    in_place: bool = False,
) -> tuple[Tensors, dict[str, Tensors]]:
    """New (params, state) after one step. `step` and `lr` are Python numbers (one run) or device
    tensors (step: 0-dim int64; lr: [K] float64). The inputs are left unchanged unless `in_place`
    (then they are updated and returned, as torch.optim does, sparing a parameter-sized allocation)."""
    if optim.name == "adam":
        return _adam(optim, params, grads, state, step, lr, table, in_place)
    return _sgd(optim, params, grads, state, step, lr, in_place)


def _adam(optim, params, grads, state, step, lr, table, in_place):
    beta1, beta2 = BETAS
    if isinstance(lr, Tensor):
        row = table.index_select(0, torch.clamp(step, max=len(table) - 1).view(1))[0]
        neg_step = -(lr / row[0])
        bc2_sqrt = row[1].to(torch.float32)
    else:
        neg_step = -(lr / (1 - beta1**step))
        bc2_sqrt = (1 - beta2**step) ** 0.5
    new_p, new_m, new_v = {}, {}, {}
    for n, p in params.items():
        g = grads[n]
        if optim.weight_decay != 0:
            g = g.add(p, alpha=optim.weight_decay)
        m, v = state["exp_avg"][n], state["exp_avg_sq"][n]
        m = m.lerp_(g, 1 - beta1) if in_place else torch.lerp(m, g, 1 - beta1)
        v = (v.mul_(beta2) if in_place else v.mul(beta2)).addcmul_(g, g, value=1 - beta2)
        denom = (second_moment_root(v) / bc2_sqrt).add_(EPS)
        if isinstance(neg_step, Tensor):  # = addcdiv(p, m, denom, value=-step_size), per run
            step_p = (_per_run(neg_step, p) * m).div_(denom)
            new_p[n] = p.add_(step_p) if in_place else p + step_p
        else:
            new_p[n] = p.addcdiv_(m, denom, value=neg_step) if in_place else p.addcdiv(m, denom, value=neg_step)
        new_m[n], new_v[n] = m, v
    return new_p, {"exp_avg": new_m, "exp_avg_sq": new_v}


def _sgd(optim, params, grads, state, step, lr, in_place):
    first = step == 1 if not isinstance(step, Tensor) else None
    new_p, new_b = {}, {}
    for n, p in params.items():
        g = grads[n]
        if optim.weight_decay != 0:
            g = g.add(p, alpha=optim.weight_decay)
        if optim.momentum:
            buf = state["momentum_buffer"][n]
            if first is None:  # on device: the buffer starts as the first gradient (torch clones it)
                g = torch.where(step == 1, g, buf.mul(optim.momentum).add_(g))
            else:
                g = g.clone() if first else buf.mul(optim.momentum).add_(g)
            new_b[n] = g
        if isinstance(lr, Tensor):
            new_p[n] = p.add_(_per_run(-lr, p) * g) if in_place else p + _per_run(-lr, p) * g
        else:
            new_p[n] = p.add_(g, alpha=-lr) if in_place else p.add(g, alpha=-lr)
    return new_p, ({"momentum_buffer": new_b} if optim.momentum else {})
