"""The gaps the mutation run of batchlab.measure.gradients left, each closed against an answer worked out by hand.

Most cases use a linear model without bias at zero weights, squared loss 0.5 (x.theta - y)^2 and y = -1, so that
each example's gradient is its own input, g_i = x_i: the per-example sums, tr(Sigma), |G|^2 and every minibatch
gradient are then exact in binary arithmetic for inputs like 0.5, 1 and 2.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from batchlab.measure import gradients
from batchlab.measure.gradients import (
    draw,
    flatten_grads,
    gradient_spread,
    minibatch_grad,
    per_example_grads,
    per_example_stats,
    two_batch_stats,
)
from test_gradients import squared_error  # the per-sample loss of the closed-form linear regression tests


def inputs_as_gradients(x, dtype=torch.float64):
    """A linear model at zero weights with y = -1: g_i = x_i exactly."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype)
    model = nn.Linear(x.shape[1], 1, bias=False).to(dtype)
    nn.init.zeros_(model.weight)
    return model, x, -torch.ones(len(x), dtype=dtype)


def with_loss(model, x, y):
    """(model, loss, x, y) in the order the statistics take them."""
    return model, squared_error, x, y


def spoke(n, a, s):
    """g_i = a e_0 + s e_i (i = 1..n): every minibatch of B distinct examples has |G_B|^2 = a^2 + s^2/B exactly."""
    x = np.concatenate([np.full((n, 1), a), s * np.eye(n)], axis=1)
    return inputs_as_gradients(x)


def test_a_gradient_estimate_of_exactly_zero_or_below_one_per_example():
    """Scalar g in {0, 2}: mean 1, tr(Sigma) = 2, |G|^2 = 1 - 2/2 = 0 exactly, so B_simple is undefined (NaN), not a
    division by zero. g in {0.5, 1}: |G|^2 = 0.5625 - 0.125/2 = 0.5, tr(Sigma) = 0.125, B_simple = 0.25."""
    stats = per_example_stats(*with_loss(*inputs_as_gradients([[0.0], [2.0]])))
    assert stats.grad_sq == 0.0 and stats.trace_sigma == 2.0 and math.isnan(stats.b_simple)
    stats = per_example_stats(*with_loss(*inputs_as_gradients([[0.5], [1.0]])))
    assert (stats.grad_sq, stats.trace_sigma, stats.b_simple) == (0.5, 0.125, 0.25)
    assert stats.mean_grad_sq == 0.5625 and stats.n == 2


def test_a_gradient_estimate_of_exactly_zero_or_below_one_from_two_batch_sizes():
    """The spoke without replacement: |G_B|^2 = a^2 + s^2/B in every draw. a = 0, s = 1, B = 2 and 4: |G|^2 =
    (4/4 - 2/2)/2 = 0 exactly, B_simple NaN. a = 0.5: |G|^2 = (4 x 0.5 - 2 x 0.75)/2 = 0.25, tr(Sigma) =
    (0.75 - 0.5)/(1/2 - 1/4) = 1, B_simple = 4; the averages, sizes, draws and sampling are returned as given."""
    est = two_batch_stats(*with_loss(*spoke(8, 0.0, 1.0)), 2, 4, 3, torch.Generator().manual_seed(0), replace=False)
    assert est["grad_sq"] == 0.0 and est["trace_sigma"] == pytest.approx(1.0, rel=1e-12)
    assert math.isnan(est["b_simple"])
    est = two_batch_stats(*with_loss(*spoke(8, 0.5, 1.0)), 2, 4, 3, torch.Generator().manual_seed(0), replace=False)
    assert est["grad_sq"] == pytest.approx(0.25, rel=1e-12) and est["trace_sigma"] == pytest.approx(1.0, rel=1e-12)
    assert est["b_simple"] == pytest.approx(4.0, rel=1e-12)
    assert est["norm_sq_small"] == pytest.approx(0.75, rel=1e-12)
    assert est["norm_sq_big"] == pytest.approx(0.5, rel=1e-12)
    assert (est["b_small"], est["b_big"], est["n_draws"], est["replace"]) == (2, 4, 3, False)


def test_two_batch_sizes_from_one_and_a_single_draw_are_allowed_and_the_bounds_refused():
    """B_small = 1 and one draw are valid; B_small = 0, B_small = B_big and no draws are refused with their reason.
    With replacement by default: on the spoke at B = 1 every draw is one example, |G_1|^2 = a^2 + s^2 = 2."""
    model, x, y = spoke(4, 1.0, 1.0)
    est = two_batch_stats(model, squared_error, x, y, 1, 4, 1, torch.Generator().manual_seed(0))
    assert est["norm_sq_small"] == pytest.approx(2.0, rel=1e-12) and est["n_draws"] == 1 and est["replace"] is True
    for sizes in [(0, 4), (4, 4), (5, 4)]:
        with pytest.raises(ValueError, match=rf"^need 1 <= b_small < b_big, got {sizes[0]}, {sizes[1]}$"):
            two_batch_stats(model, squared_error, x, y, *sizes, 2, torch.Generator())
    with pytest.raises(ValueError, match="^n_draws must be positive, got 0$"):
        two_batch_stats(model, squared_error, x, y, 1, 2, 0, torch.Generator())


def jackknife_log_se(g, groups=16):
    """Delete-a-group jackknife of log B_simple, example j in group j mod K, from the examples kept each time."""
    k = min(groups, len(g))
    logs = []
    for left in range(k):
        kept = g[np.arange(len(g)) % k != left]
        trace = kept.var(0, ddof=1).sum()
        mean = kept.mean(0)
        logs.append(math.log(trace / (mean @ mean - trace / len(kept))))
    logs = np.array(logs)
    return math.sqrt((k - 1) / k * ((logs - logs.mean()) ** 2).sum())


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 40])
def test_statistics_and_their_jackknife_do_not_depend_on_the_chunk_size(chunk_size):
    """n = 40 examples in 16 groups, fed in chunks of 1, 3 (not dividing 40), 7 and all at once: tr(Sigma), |G|^2
    and the jackknife's log SE are the closed form, so each chunk's examples land in their own groups."""
    rng = np.random.default_rng(3)
    g = rng.standard_normal((40, 4)) + np.array([1.0, -2.0, 0.5, 3.0])
    stats = per_example_stats(*with_loss(*inputs_as_gradients(g)), chunk_size=chunk_size)
    trace = g.var(0, ddof=1).sum()
    mean = g.mean(0)
    assert stats.trace_sigma == pytest.approx(trace, rel=1e-12)
    assert stats.grad_sq == pytest.approx(mean @ mean - trace / 40, rel=1e-12)
    assert stats.jackknife.groups == 16 and stats.jackknife.unstable == 0
    assert stats.jackknife.log_se == pytest.approx(jackknife_log_se(g), rel=1e-9)


def test_chunk_size_and_example_count_bounds():
    model, x, y = inputs_as_gradients([[1.0], [2.0], [4.0]])
    with pytest.raises(ValueError, match="^chunk_size must be positive, got 0$"):
        next(per_example_grads(model, squared_error, x, y, chunk_size=0))
    with pytest.raises(ValueError, match="^per-example statistics need at least 2 examples$"):
        per_example_stats(model, squared_error, x[:1], y[:1])


def test_dropout_in_train_mode_draws_each_examples_own_mask():
    """Dropout (p = 1/2) before w.x with w = 1 and y = 0, every example the same x = (1, ..., 8): g_i = (1.x~) x~ with
    x~ = 2 m_i * x for a 0/1 mask m_i. Each row has that form, and the 16 rows do not all share one mask."""
    torch.manual_seed(0)
    d = 8
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(d, 1, bias=False)).double().train()
    nn.init.ones_(model[1].weight)
    x0 = torch.arange(1.0, d + 1, dtype=torch.float64)
    x, y = x0.repeat(16, 1), torch.zeros(16, dtype=torch.float64)
    g = torch.cat(list(per_example_grads(model, squared_error, x, y, chunk_size=16))).numpy()
    masks = g != 0
    for row, mask in zip(g, masks):
        kept = 2 * x0.numpy() * mask
        np.testing.assert_allclose(row, kept.sum() * kept, rtol=1e-12)
    assert len({tuple(m) for m in masks}) > 1


def test_a_parameter_the_loss_does_not_use_gets_zeros_in_the_minibatch_gradient():
    """Two linear maps, the loss reads only the first: the second's slice of the gradient is 0, in float64, written
    into a given buffer. The first: mean of (x_i.theta - y_i) x_i at theta = 0, y = -1: the mean of the inputs."""
    first, second = nn.Linear(2, 1, bias=False).double(), nn.Linear(3, 1, bias=False).double()
    nn.init.zeros_(first.weight)
    model = nn.ModuleDict({"first": first, "second": second})
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=torch.float64)
    y = -torch.ones(2, dtype=torch.float64)

    def loss(m, xb, yb):
        return squared_error(m["first"], xb, yb)

    out = torch.full((5,), float("nan"), dtype=torch.float64)
    grad = minibatch_grad(model, loss, x, y, out=out)
    assert grad.data_ptr() == out.data_ptr()
    assert grad.tolist() == [2.0, 4.0, 0.0, 0.0, 0.0]
    fresh = minibatch_grad(model.float(), loss, x.float(), y.float())
    assert fresh.dtype == torch.float64 and fresh.tolist() == [2.0, 4.0, 0.0, 0.0, 0.0]


def test_draws_reach_every_example_and_refuse_more_than_there_are():
    """With replacement 300 draws of 3 examples miss one with probability 3 (2/3)^300, about 1e-52; without, a
    minibatch is distinct examples, all n of them at B = n, and B = n + 1 is refused."""
    gen = torch.Generator().manual_seed(0)
    assert sorted(set(draw(3, 300, gen, replace=True).tolist())) == [0, 1, 2]
    assert sorted(draw(5, 5, gen, replace=False).tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="^cannot draw 6 of 5 examples without replacement$"):
        draw(5, 6, gen, replace=False)


def test_the_spread_without_a_generator_is_the_same_every_time_and_needs_two_draws():
    model, x, y = spoke(6, 1.0, 1.0)
    first = gradient_spread(model, squared_error, x, y, [2, 3], n_draws=4)
    torch.manual_seed(123)  # the global stream is not what it draws from
    second = gradient_spread(model, squared_error, x, y, [2, 3], n_draws=4)
    assert first["spread"].tolist() == second["spread"].tolist()
    assert first["n_draws"].tolist() == [4, 4]
    with pytest.raises(ValueError, match="^the spread needs at least 2 draws$"):
        gradient_spread(model, squared_error, x, y, [2], n_draws=1)
    empty = gradient_spread(model, squared_error, x, y, [], n_draws=2)
    assert empty.empty and list(empty.columns) == ["batch_size", "spread", "spread_theory", "n_draws"]


def test_the_jackknife_groups_are_made_on_the_examples_device(monkeypatch):
    """Every call for group labels passes the device the examples are on (a CPU here, so the spy reads what was
    asked): 10 examples in chunks of 4 are labelled 0..9, by chunk and once for the counts."""
    calls = []
    real = gradients.group_of

    def spy(start, rows, groups, device=None):
        calls.append((start, rows, groups, device))
        return real(start, rows, groups, device)

    monkeypatch.setattr(gradients, "group_of", spy)
    rng = np.random.default_rng(1)
    per_example_stats(*with_loss(*inputs_as_gradients(rng.standard_normal((10, 2)) + 3.0)), chunk_size=4)
    cpu = torch.device("cpu")
    assert calls == [(0, 4, 10, cpu), (4, 4, 10, cpu), (8, 2, 10, cpu), (0, 10, 10, cpu)]


def test_both_two_batch_sizes_are_drawn_with_replacement_by_default():
    """The spoke (n = 4, a = s = 1) at B = 2 with replacement: a pair repeats its example with probability 1/4, and
    then |G_2|^2 = a^2 + s^2, else a^2 + s^2/2, so E|G_2|^2 = 1 + (1/2)(1 + 1/4) = 1.625. Over 400 draws its SD is
    0.5 sqrt(3/16) / 20 = 0.011: 0.054 is 5 SDs, and without replacement every pair gives 1.5 exactly (11 SDs off).
    At B = 4 with replacement E|G_4|^2 = 1 + (1/4)(1 + 3/4) = 1.4375, with an SD of 0.0066 over 400 draws (the sum
    of squared counts of 4 draws over 4 examples has variance 4.5), so 1.30 is 21 SDs below; without replacement
    every draw is all four examples: 1.25."""
    est = two_batch_stats(*with_loss(*spoke(4, 1.0, 1.0)), 2, 4, 400, torch.Generator().manual_seed(0))
    assert est["norm_sq_small"] == pytest.approx(1.625, abs=0.054)
    assert est["norm_sq_big"] > 1.25 + 0.05


def test_a_flat_buffer_of_the_wrong_length_is_refused_with_both_lengths():
    """One row: gradients of 3 + 2 values into a buffer of 4."""
    with pytest.raises(ValueError, match="^the gradients hold 5 values per row, the buffer 4$"):
        flatten_grads([torch.zeros(3), torch.zeros(2)], out=torch.empty(4, dtype=torch.float64))
