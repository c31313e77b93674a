"""InfoNCE with in-batch negatives and its augmentations, against hand-computed cases."""

import math

import pytest
import torch

from batchlab.nets.contrastive import InfoNCELoss, augment, nt_xent, runs_info_nce, runs_nt_xent


def test_nt_xent_matches_a_hand_computed_case():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # View 0's candidates (all but itself): view 1 (cos 0), view 2 (its positive, cos 1), view 3 (cos 0).
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * math.exp(0)))
    losses = nt_xent(z1, z2, t)
    assert losses.shape == (2,) and torch.allclose(losses, torch.full((2,), expected))


def test_one_sample_has_no_negatives_and_zero_loss():
    z = torch.randn(1, 4)
    assert nt_xent(z, torch.randn(1, 4), 0.1).item() == pytest.approx(0.0, abs=1e-7)


def test_more_negatives_make_the_task_harder():
    torch.manual_seed(0)
    small = nt_xent(torch.randn(4, 8), torch.randn(4, 8), 0.5).mean()
    large = nt_xent(torch.randn(256, 8), torch.randn(256, 8), 0.5).mean()
    assert large > small  # random embeddings: loss grows like log(2B - 1)
    assert large.item() == pytest.approx(math.log(2 * 256 - 1), rel=0.05)


def test_augment_shifts_scales_and_is_reproducible():
    x = torch.arange(10.0).repeat(3, 1, 1)  # [3, 1, 10]
    gen = torch.Generator().manual_seed(0)
    shifted = augment(x, gen, shift=3, scale=0.0, noise=0.0)
    for row in shifted[:, 0]:
        k = int(torch.nonzero(row == 0).item())
        assert torch.equal(row, torch.roll(torch.arange(10.0), k)) and k in {0, 1, 2, 3, 7, 8, 9}
    a = augment(x, torch.Generator().manual_seed(5), 2, 0.2, 0.1)
    b = augment(x, torch.Generator().manual_seed(5), 2, 0.2, 0.1)
    assert torch.equal(a, b)
    scaled = augment(torch.ones(200, 1, 4), torch.Generator().manual_seed(1), 0, 0.2, 0.0)
    gains = scaled[:, 0, 0]
    assert (gains >= 0.8).all() and (gains <= 1.2).all() and gains.std() > 0.05


def test_loss_draws_from_its_own_generator():
    model = torch.nn.Flatten()
    x = torch.randn(6, 1, 12)
    a, b = InfoNCELoss(0.5, 2, 0.1, 0.05, seed=3), InfoNCELoss(0.5, 2, 0.1, 0.05, seed=3)
    assert torch.equal(a(model, x, None), b(model, x, None))
    assert torch.equal(a.fresh(3)(model, x, None), InfoNCELoss(0.5, 2, 0.1, 0.05, seed=3)(model, x, None))
    state = a.generator.get_state()
    first = a(model, x, None)
    a.generator.set_state(state)
    assert torch.equal(a(model, x, None), first)


def test_runs_nt_xent_takes_each_runs_negatives_from_its_own_batch():
    """K runs at once give each run's own nt_xent (float32 rounding apart); had the negatives crossed runs,
    a run's loss would change with another run's views."""
    z1 = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))
    z2 = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(2))
    together = runs_nt_xent(z1, z2, 0.5)
    alone = torch.stack([nt_xent(z1[k], z2[k], 0.5) for k in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-6, atol=1e-6)
    other = z2.clone()
    other[2] = -other[2]
    torch.testing.assert_close(runs_nt_xent(z1, other, 0.5)[:2], together[:2], rtol=1e-6, atol=1e-6)


def test_runs_info_nce_draws_what_each_runs_own_loss_draws():
    """Two runs' losses (seeds 3 and 4) on their own batches: each value and each generator's state after the
    call are those of the run's loss called alone on its model."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
    x = torch.randn(2, 6, 1, 8, generator=torch.Generator().manual_seed(5))
    together_losses = [InfoNCELoss(0.5, 2, 0.1, 0.05, seed) for seed in (3, 4)]
    alone_losses = [InfoNCELoss(0.5, 2, 0.1, 0.05, seed) for seed in (3, 4)]
    together = runs_info_nce(lambda views: model(views.flatten(0, 1)).view(2, 6, 3), x, together_losses)
    alone = torch.stack([loss(model, x[k], None) for k, loss in enumerate(alone_losses)])
    torch.testing.assert_close(together, alone, rtol=1e-6, atol=1e-6)
    for a, b in zip(together_losses, alone_losses):
        assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert not torch.allclose(together[0], together[1])
