"""batchlab.training.adam.Adam is torch.optim.Adam bit for bit, on the sparse gradients that make its CPU step faster."""

import pytest
import torch

from batchlab.training.adam import FLUSH, Adam


def _train(optimizer_class, weight_decay: float, steps: int = 300) -> list[torch.Tensor]:
    """A few layers trained on gradients that are exactly zero for most rows (absent inputs), tiny for
    some (so the second moment holds zeros, subnormals and small normal numbers), large for the rest."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(64, 16, generator=gen)), torch.nn.Parameter(torch.randn(16, generator=gen))]
    optimizer = optimizer_class(params, lr=1e-2, weight_decay=weight_decay)
    rows = [torch.rand(p.shape[0], generator=gen) for p in params]
    for step in range(steps):
        for p, r in zip(params, rows):
            grad = torch.randn(p.shape, generator=gen)
            grad[r < 0.6] = 0.0  # inputs never seen
            grad[(r < 0.7) & (torch.rand(r.shape, generator=gen) < 0.9)] = 0.0  # inputs seen now and then
            grad[(r >= 0.7) & (r < 0.8)] *= 1e-21  # squares below FLUSH: subnormal second moments
            p.grad = grad
        optimizer.step()
    return [p.detach().clone() for p in params] + [optimizer.state[p]["exp_avg_sq"].clone() for p in params]


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_the_flushed_step_is_torchs_adam_bit_for_bit(weight_decay):
    ours, torchs = _train(Adam, weight_decay), _train(torch.optim.Adam, weight_decay)
    if weight_decay == 0:  # (with coupled weight decay every gradient holds the parameter: no zeros)
        second_moment = ours[2]
        assert (second_moment == 0).any() and ((second_moment > 0) & (second_moment < FLUSH)).any(), "the case must arise"
    for a, b in zip(ours, torchs):
        assert torch.equal(a, b)


def test_below_flush_the_denominator_is_eps_at_the_first_step():
    """The premise, at the first step (the smallest bias correction): sqrt(v) / sqrt(1 - 0.999) + 1e-8 is 1e-8
    in float32 for every v from 0 to FLUSH, subnormals included, and not for a v well above FLUSH."""
    v = torch.tensor([0.0, 1e-45, 1e-40, 1e-38, FLUSH / 2, FLUSH, 1e-28])
    denom = (v.sqrt() / (1 - 0.999) ** 0.5).add_(1e-8)
    assert (denom[:-1] == torch.tensor(1e-8)).all() and denom[-1] > torch.tensor(1e-8)


def test_other_settings_take_torchs_own_step():
    p = torch.nn.Parameter(torch.ones(3))
    optimizer = Adam([p])
    optimizer.param_groups[0]["amsgrad"] = True
    assert not Adam._flushable(optimizer.param_groups[0])
    p.grad = torch.ones(3)
    optimizer.step()
    assert "max_exp_avg_sq" in optimizer.state[p], "torch's amsgrad step ran"
