"""Known answers for the smaller statistics: target kinds at asymmetric values, the fold summary, a data set with a
known margin, multiplicity corrections where monotonicity matters, and a spy on Adam's CPU step."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from batchlab.analysis.significance import benjamini_hochberg, holm, spearman_trend
from batchlab.analysis.spread_shape import flattening_test
from batchlab.analysis.targets import curve_ends, pilot_loss, resolve_target, stop_target
from batchlab.config import Downstream
from batchlab.measure.downstream import evaluate_embeddings, folds, summarise
from batchlab.training import adam as adam_module
from batchlab.training.adam import Adam

# initial losses 1.0 and 0.6 (mean 0.8), final 0.3 and 0.2 (best 0.2); rows out of order on purpose
CURVES = pd.DataFrame({
    "batch_size": [1, 1, 1, 4, 4, 4],
    "seed": [0, 0, 0, 0, 0, 0],
    "step": [5, 1, 3, 3, 5, 1],
    "val_loss": [0.3, 1.0, 0.5, 0.4, 0.2, 0.6],
})


def test_curve_ends_are_the_mean_first_and_the_lowest_last_value():
    assert curve_ends(CURVES, "val_loss") == pytest.approx((0.8, 0.2), rel=1e-12)


@pytest.mark.parametrize("kind, value, baseline, expected, reversed_", [
    ("fraction", 0.25, math.nan, 0.8 - 0.25 * 0.6, 0.2 + 0.25 * 0.6),          # 0.65, not 0.35
    ("fraction", 0.9, math.nan, 0.8 - 0.9 * 0.6, 0.2 + 0.9 * 0.6),            # 0.26, not 0.74
    ("within_best", 0.3, math.nan, 0.2 * 1.3, 0.2 * 0.7),                     # 0.26, not 0.14
    ("baseline_fraction", 0.25, 0.7, 0.7 - 0.25 * 0.5, 0.2 + 0.25 * 0.5),     # 0.575, not 0.325
    ("baseline_fraction", 0.9, 0.7, 0.7 - 0.9 * 0.5, 0.2 + 0.9 * 0.5),        # 0.25, not 0.65
    ("value", 0.37, math.nan, 0.37, math.nan),
])
def test_target_kinds_at_asymmetric_values(kind, value, baseline, expected, reversed_):
    got = resolve_target(CURVES, "val_loss", kind, value, baseline)
    assert got == pytest.approx(expected, rel=1e-12)
    assert not got == pytest.approx(reversed_, rel=1e-3)


def test_stop_targets_at_asymmetric_values():
    assert stop_target("value", 0.37) == 0.37
    assert stop_target("baseline_ratio", 0.8, baseline=0.6) == pytest.approx(0.48, rel=1e-12)
    # a quarter of the pilot's improvement from the baseline 1.0 down to 0.2: 0.8 (reversed: 0.4)
    assert stop_target("pilot_fraction", 0.25, baseline=1.0, pilot=0.2) == pytest.approx(0.8, rel=1e-12)
    with pytest.raises(ValueError, match="needs the data's baseline"):
        stop_target("baseline_ratio", 0.8)


def test_the_pilot_is_the_mean_over_seeds_of_the_smallest_batch_size():
    runs = pd.DataFrame({"batch_size": [8, 2, 2, 2, 4], "val_loss": [0.01, 0.3, np.nan, 0.6, 0.02]})
    assert pilot_loss(runs) == pytest.approx(0.45, rel=1e-12)
    assert math.isnan(pilot_loss(pd.DataFrame({"batch_size": [2], "val_loss": [np.nan]})))


def test_the_fold_summary_is_the_mean_and_the_sample_sd():
    """Accuracies 1, 0.5, 0.75: mean 0.75, SD with ddof 1 sqrt(0.125 / 2) = 0.25 (ddof 0 would give 0.204)."""
    scores = pd.DataFrame({"fold": [0, 1, 2], "accuracy": [1.0, 0.5, 0.75], "roc_auc": [0.9, 0.9, 0.6]})
    out = summarise(scores)
    assert out == pytest.approx({"accuracy_mean": 0.75, "accuracy_std": 0.25, "roc_auc_mean": 0.8,
                                 "roc_auc_std": math.sqrt(0.06 / 2)}, rel=1e-12)


def test_a_margin_with_one_planted_outlier_gives_exact_fold_metrics():
    """Class 0 on [-11, -9], class 1 on [9, 11] (a margin of 18), and one sample labelled 1 at -12, beyond every
    class-0 sample. A linear SVM puts the boundary in the margin, so every fold is perfect except the one whose test
    side holds the outlier: it misses that sample (accuracy 1 - 1/n_test) and ranks it below all its negatives
    (AUC 1 - 1/n_pos)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-11, -9, 50), rng.uniform(9, 11, 49), [-12.0]])
    y = np.array([0] * 50 + [1] * 50)
    z = np.column_stack([x, rng.uniform(-1, 1, 100)])
    spec = Downstream(folds=5, kernel="linear")
    cv = folds(y, "classification", 5)
    accuracy, auc = [], []
    for _, test in cv:
        has = 99 in test
        accuracy.append(1 - 1 / len(test) if has else 1.0)
        auc.append(1 - 1 / int(y[test].sum()) if has else 1.0)
    row = evaluate_embeddings(z[None], [{"run": 0}], y, "classification", spec).iloc[0]
    assert row["evaluated"]
    assert row["accuracy_mean"] == pytest.approx(np.mean(accuracy), rel=1e-12)
    assert row["accuracy_std"] == pytest.approx(np.std(accuracy, ddof=1), rel=1e-12)
    assert row["roc_auc_mean"] == pytest.approx(np.mean(auc), rel=1e-12)
    assert row["roc_auc_std"] == pytest.approx(np.std(auc, ddof=1), rel=1e-12)


def test_adjusted_p_values_where_the_running_extremum_matters():
    """p = 0.001, 0.04, 0.041, 0.2 (m = 4). BH: 0.004, 0.08, 0.0547, 0.2 before the running minimum from the top,
    so 0.04 gets 0.041 x 4/3. Holm: 0.004, 0.12, 0.082, 0.2 before the running maximum, so 0.041 gets 0.12."""
    p = [0.2, 0.041, 0.001, 0.04]
    assert benjamini_hochberg(p) == pytest.approx([0.2, 0.041 * 4 / 3, 0.004, 0.041 * 4 / 3], rel=1e-12)
    assert holm(p) == pytest.approx([0.2, 0.12, 0.004, 0.12], rel=1e-12)
    assert holm([0.3, 0.4]) == pytest.approx([0.6, 0.6], rel=1e-12) and holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert benjamini_hochberg([0.6, 0.9, 0.95]) == pytest.approx([0.95, 0.95, 0.95], rel=1e-12)  # 1.8, 1.35, 0.95
    assert benjamini_hochberg([0.4, 0.9]) == pytest.approx([0.8, 0.9], rel=1e-12)


@pytest.mark.parametrize("y", [[3, 1, 4, 2, 6, 5, 7], [2, 1, 3, 6, 5, 4, 8, 7], [5, 4, 3, 2, 1, 6]])
def test_exact_permutation_p_values_by_enumerating_every_ordering(y):
    """Every ordering of the values enumerated here (itertools), rho computed by the d^2 formula for distinct ranks."""
    n = len(y)
    ranks = np.argsort(np.argsort(y)) + 1

    def rho(r):
        return 1 - 6 * float(((np.arange(1, n + 1) - np.asarray(r)) ** 2).sum()) / (n * (n * n - 1))

    observed = rho(ranks)
    all_rhos = np.array([rho(p) for p in itertools.permutations(range(1, n + 1))])
    result = spearman_trend(2.0 ** np.arange(n), y)
    assert result.exact and result.rho == pytest.approx(observed, rel=1e-12)
    assert result.p_increasing == pytest.approx(np.mean(all_rhos >= observed - 1e-12), rel=1e-12)
    assert result.p_decreasing == pytest.approx(np.mean(all_rhos <= observed + 1e-12), rel=1e-12)


def test_a_monte_carlo_p_value_counts_the_observed_ordering():
    """Twelve increasing values: of 2000 random orderings none is the identity (chance 2000/12! = 4e-6), so the p-value
    is (1 + 0) / (1 + 2000), never 0."""
    result = spearman_trend(2.0 ** np.arange(12), np.arange(12.0), n_perm=2000)
    assert not result.exact and result.p_increasing == pytest.approx(1 / 2001, rel=1e-12)
    assert result.p_decreasing == pytest.approx(1.0, rel=1e-12)


def test_the_knee_test_reads_the_seed_to_seed_sd_and_the_end_values_exactly():
    """A noiseless broken stick (slope -0.5 to B = 16, then flat) with two seeds at +-0.05 around it at every size:
    the broken stick fits the seed means exactly, so the run SD is the pooled seed-to-seed SD, sqrt(2 x 0.05^2 / 1)."""
    sizes = 2.0 ** np.arange(8)
    curve = -0.5 * np.minimum(np.log(sizes) - np.log(16.0), 0)
    values = curve[:, None] + np.array([[0.05, -0.05]])
    result = flattening_test(sizes, values, n_sim=200)
    assert result["run_sd"] == pytest.approx(0.05 * math.sqrt(2), rel=1e-9)
    assert result["knee"] == pytest.approx(16.0, rel=1e-9)
    assert result["slope_before"] == pytest.approx(-0.5, rel=1e-9) and result["slope_after"] == pytest.approx(0.0, abs=1e-9)
    assert result["estimate"] == pytest.approx(0.5, rel=1e-9)
    assert result["at_smallest"] == pytest.approx(math.exp(curve[0]), rel=1e-12)
    assert result["at_largest"] == pytest.approx(1.0, rel=1e-12)
    assert result["n_seeds"] == 2 and result["n_x"] == 8 and "seed-to-seed" in result["detail"]


class _Spy:
    def __init__(self, wrapped):
        self.wrapped, self.calls = wrapped, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.wrapped(*args, **kwargs)


def _one_step(params, **kwargs):
    optimizer = Adam(params, **kwargs)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    return optimizer


def test_adams_cpu_fast_path_runs_for_float32_parameters_and_torchs_step_does_not(monkeypatch):
    """A spy on the flushed square root and on torch's own step: a plain float32 CPU model (with weight decay too)
    takes the fast path; float64 parameters, amsgrad or a closure take torch's step."""
    root = _Spy(adam_module.second_moment_root)
    torch_step = _Spy(torch.optim.Adam.step)
    monkeypatch.setattr(adam_module, "second_moment_root", root)
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, closure=None: torch_step(self, closure))
    _one_step([torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))])
    assert (root.calls, torch_step.calls) == (2, 0)
    _one_step([torch.nn.Parameter(torch.zeros(3))], weight_decay=1e-2)
    assert (root.calls, torch_step.calls) == (3, 0)
    _one_step([torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))])
    assert (root.calls, torch_step.calls) == (3, 1)
    optimizer = Adam([torch.nn.Parameter(torch.zeros(3))])
    optimizer.param_groups[0]["amsgrad"] = True
    optimizer.param_groups[0]["params"][0].grad = torch.ones(3)
    optimizer.step()
    assert (root.calls, torch_step.calls) == (3, 2)


def test_seed_spread_of_no_two_and_five_seeds():
    """Five seeds 10, 0, 0, 0, 0: a resample's mean is 2k with k ~ Binomial(5, 1/5) copies of the 10. P(k = 0) = 0.33 is
    over 2.5%, so the lower end is 0; P(k <= 2) = 0.942 < 0.975 < P(k <= 3) = 0.993, so the upper end is 6 (2000 draws
    put the empirical shares within 5 SDs of those)."""
    from batchlab.analysis.significance import seed_spread

    none = seed_spread([math.nan])
    assert none["kind"] == "none" and none["n"] == 0 and none["label"] == "no seeds" and math.isnan(none["low"])
    two = seed_spread([0.5, 0.4])
    assert two == {"kind": "range", "low": 0.4, "high": 0.5, "n": 2, "label": "range over 2 seeds"}
    five = seed_spread([10.0, 0.0, 0.0, 0.0, 0.0])
    assert five["kind"] == "interval" and five["low"] == 0.0 and five["high"] == pytest.approx(6.0, rel=1e-12)
