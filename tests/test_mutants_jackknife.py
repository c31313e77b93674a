"""The jackknife of log B_simple at its smallest sizes, worked out by hand: three one-dimensional gradients
(delete-one), the group count and membership, and the cases it leaves undefined."""

import math

import pytest
import torch

from batchlab.measure.jackknife import JACKKNIFE_GROUPS, b_simple_jackknife, group_of, n_groups


def sums(groups: list[list[float]]):
    """Per-group sums of one-dimensional gradients, their squares and counts (float64)."""
    return (torch.tensor([[sum(g)] for g in groups], dtype=torch.float64),
            torch.tensor([sum(x * x for x in g) for g in groups], dtype=torch.float64),
            torch.tensor([float(len(g)) for g in groups], dtype=torch.float64))


def test_three_examples_delete_one_by_hand():
    # gradients 1, 2, 4. Leave out 1: {2, 4}, mean 3, variance 2, |G|^2 = 9 - 2/2 = 8, B = 1/4.
    # Leave out 2: {1, 4}, mean 2.5, variance 4.5, |G|^2 = 6.25 - 2.25 = 4, B = 9/8. Leave out 4: {1, 2}, mean 1.5,
    # variance 0.5, |G|^2 = 2.25 - 0.25 = 2, B = 1/4. The logs are l, L, l with L - l = log 4.5; their mean is
    # l + log(4.5)/3, so the sum of squares is (2/9 + 4/9) log(4.5)^2 and SE = sqrt(2/3 * 2/3) log 4.5 = 2/3 log 4.5.
    result = b_simple_jackknife(*sums([[1.0], [2.0], [4.0]]))
    assert result.log_se == pytest.approx(2 / 3 * math.log(4.5), rel=1e-12)
    assert result.groups == 3 and result.unstable == 0


def test_groups_of_two_examples_by_hand():
    # groups {1, 4} and {2, 8}: leaving out the first keeps {2, 8}: mean 5, variance 18, |G|^2 = 25 - 9 = 16,
    # B = 18/16; leaving out the second keeps {1, 4}: B = 4.5/4 (as above). Equal B: SE 0.
    result = b_simple_jackknife(*sums([[1.0, 4.0], [2.0, 8.0]]))
    assert result.log_se == pytest.approx(0.0, abs=1e-12) and result.groups == 2
    # {1, 4}, {2, 4}: leave out the first: {2, 4}, B = 1/4; leave out the second: {1, 4}, B = 9/8.
    # SE = sqrt(1/2 * 2 * (log(4.5)/2)^2) = log(4.5)/2.
    other = b_simple_jackknife(*sums([[1.0, 4.0], [2.0, 4.0]]))
    assert other.log_se == pytest.approx(math.log(4.5) / 2, rel=1e-12)


def test_too_few_examples_or_groups_leave_it_undefined():
    two = b_simple_jackknife(*sums([[1.0], [2.0]]))
    assert math.isnan(two.log_se) and two.groups == 2 and two.unstable == 0
    one_group = b_simple_jackknife(*sums([[1.0, 2.0, 4.0, 5.0]]))
    assert math.isnan(one_group.log_se) and one_group.groups == 1 and one_group.unstable == 0


def test_only_the_leave_outs_without_a_resolved_gradient_count_as_unstable():
    # {1, 1, 1, -3}: leaving out -3 keeps {1, 1, 1}: variance 0, trace 0: undefined. Leaving out a 1 keeps
    # {1, 1, -3}: mean -1/3, variance 16/3, |G|^2 = 1/9 - 16/9 < 0: undefined. All four.
    assert b_simple_jackknife(*sums([[1.0], [1.0], [1.0], [-3.0]])).unstable == 4
    # {1, 2, 4, 100}: leaving out 100 keeps {1, 2, 4}: mean 7/3, variance 7/3, |G|^2 = 49/9 - 7/9 > 0; leaving out
    # 1 keeps {2, 4, 100}: mean 106/3, variance 9412/3, |G|^2 = 11236/9 - 9412/9 > 0 (and likewise for 2 and 4)
    stable = b_simple_jackknife(*sums([[1.0], [2.0], [4.0], [100.0]]))
    assert stable.unstable == 0 and math.isfinite(stable.log_se)
    # {3, 3, 3, 3, 0.01}: leaving out 0.01 gives variance 0 (trace 0); the others keep it: only one is undefined
    one = b_simple_jackknife(*sums([[3.0], [3.0], [3.0], [3.0], [0.01]]))
    assert one.unstable == 1 and math.isnan(one.log_se) and one.groups == 5


def test_group_count_and_membership():
    assert [n_groups(n) for n in (1, 5, JACKKNIFE_GROUPS - 1, JACKKNIFE_GROUPS, 1000)] == [1, 5, 15, 16, 16]
    assert JACKKNIFE_GROUPS == 16
    assert group_of(3, 6, 4).tolist() == [3, 0, 1, 2, 3, 0]
    assert group_of(0, 3, 16).tolist() == [0, 1, 2]


def test_a_leave_out_with_a_gradient_of_exactly_zero_is_unstable():
    # {0, 2, 4}: leaving out 2 keeps {0, 4}: mean 2, variance 8, |G|^2 = 4 - 8/2 = 0 exactly; leaving out 4 keeps
    # {0, 2}: mean 1, variance 2, |G|^2 = 1 - 2/2 = 0. Two undefined leave-outs; B_simple is not resolved.
    result = b_simple_jackknife(*sums([[0.0], [2.0], [4.0]]))
    assert result.unstable == 2 and math.isnan(result.log_se)


def test_groups_are_made_on_the_given_device():
    assert group_of(0, 3, 2, device=torch.device("meta")).device.type == "meta"
