"""torch.optim.Adam, bit for bit, with a CPU step that does not take the slow square root of zeros.

On a CPU torch's square root (MKL's vector math) takes about 5x as long on exact zeros, and 30x on
subnormal numbers, as on normal ones, and a tensor that mixes them is slower still. Adam's second
moment is exactly zero wherever a parameter has had no gradient yet, which with sparse inputs (EHR
codes, at batch size 1) is a third of the first and last layers: the root took 30% of a step.
Adam's denominator is sqrt(v) / sqrt(1 - b2^t) + eps, and for every v below FLUSH the first term is
under half a unit in the last place of eps, so the sum rounds to eps exactly whatever the root gave.
This step takes the root of max(v, FLUSH) instead of v: the same denominator, the same update.
"""

from __future__ import annotations

import torch
from torch import Tensor

# 2^-120 = 7.5e-37: sqrt(FLUSH) / sqrt(1 - 0.999) = 2.7e-17, under half an ulp of 1e-8 in float32 (4.4e-16).
# A power of two, whose root MKL takes as fast as any normal number's (1e-36's it takes 4x slower).
FLUSH = 2.0**-120


def second_moment_root(v: Tensor) -> Tensor:
    """sqrt(v) as Adam's denominator needs it: of max(v, FLUSH) on a CPU (the same denominator, faster); on
    other devices, whose root has no slow zeros, of v itself."""
    return (v.clamp_min(FLUSH) if v.device.type == "cpu" else v).sqrt()


class Adam(torch.optim.Adam):
    """torch.optim.Adam; on a CPU, for float32 parameters with the default betas and eps, its single-tensor
    step with the square root of max(v, FLUSH) (module docstring). Anything else is torch's own step."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None or not all(self._flushable(group) for group in self.param_groups):
            return super().step(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                grad, exp_avg, exp_avg_sq, step_t = param.grad, state["exp_avg"], state["exp_avg_sq"], state["step"]
                step_t += 1
                if weight_decay != 0:
                    grad = grad.add(param, alpha=weight_decay)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = step_t.item()
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = lr / bias_correction1
                bias_correction2_sqrt = bias_correction2**0.5
                denom = (second_moment_root(exp_avg_sq) / bias_correction2_sqrt).add_(eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)
        return None

    @staticmethod
    def _flushable(group: dict) -> bool:
        """Whether FLUSH leaves this group's updates unchanged: CPU float32, torch's default betas and eps,
        and none of the variants this step does not implement."""
        plain = not (group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"]
                     or group["fused"] or group["foreach"] or group.get("decoupled_weight_decay", False))
        defaults = tuple(group["betas"]) == (0.9, 0.999) and group["eps"] == 1e-8 and isinstance(group["lr"], float)
        return plain and defaults and all(
            p.device.type == "cpu" and p.dtype == torch.float32 and not torch.is_complex(p) for p in group["params"]
        )

