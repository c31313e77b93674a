"""The gaps the mutation run of batchlab.measure.noise left, each closed against an answer worked out independently.

measure_cell runs on a linear model without bias (squared error, or softmax regression with cross-entropy), whose
per-example gradients are known in closed form: g_i = (x_i.theta - y_i) x_i, and g_i = (p_i - e_(y_i)) x_i^T with
p_i = softmax(W x_i). tr(Sigma) (ddof 1), |G|^2 = |mean g|^2 - tr(Sigma)/n, the delete-a-group jackknife of log
B_simple and the spread theory line follow with plain numpy. The model the cell builds and the loss it takes are
swapped for that model through spies, which also record what the cell passed them.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from batchlab.config import GradientNoise
from batchlab.config.models import MLPClassifier
from batchlab.data import PARTS, Dataset
from batchlab.measure import noise
from batchlab.nets.objectives import sample_loss_for
from batchlab.seeding import derive_seed


def squared_error(model, x, y):
    return 0.5 * (model(x).squeeze(-1) - y) ** 2


def dataset(x_train, y_train, task="regression", n_val=5):
    """The given training rows, then validation rows far off them (using those would show)."""
    rng = np.random.default_rng(99)
    x_val = 100 + 50 * rng.standard_normal((n_val, x_train.shape[1]))
    x = np.concatenate([x_train, x_val]).astype(np.float64)
    y_val = np.zeros(n_val, dtype=y_train.dtype) if task == "classification" else 100 * np.ones(n_val)
    y = np.concatenate([y_train, y_val])
    split = np.array([PARTS["train"]] * len(x_train) + [PARTS["val"]] * n_val, dtype=np.int8)
    return Dataset(x=x, labels={"y": y}, tasks={"y": task}, target="y", split=split, name="toy", synthetic=True,
                   description="")


def regression(n=20, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0])[:d] + 0.3 * rng.standard_normal(n)
    return x, y


def per_example(x, y, theta):
    """g_i = (x_i.theta - y_i) x_i."""
    return (x @ theta - y)[:, None] * x


def noise_terms(g):
    """Unbiased tr(Sigma) (ddof 1) and |G|^2 = |mean g|^2 - tr(Sigma)/n of per-example gradients g [n, P]."""
    n = len(g)
    trace = g.var(0, ddof=1).sum()
    mean = g.mean(0)
    return trace, mean @ mean - trace / n


def jackknife_log_se(g, groups=16):
    """Delete-a-group jackknife of log B_simple: example j in group j mod K, each group left out in turn and the
    statistics recomputed from the examples kept; SE = sqrt((K-1)/K sum_k (log b_k - mean)^2)."""
    k = min(groups, len(g))
    logs = []
    for left in range(k):
        kept = g[np.arange(len(g)) % k != left]
        trace, grad_sq = noise_terms(kept)
        logs.append(math.log(trace / grad_sq))
    logs = np.array(logs)
    return math.sqrt((k - 1) / k * ((logs - logs.mean()) ** 2).sum()), k


class Recorder:
    """What the cell passed to build_model, the model's .to, sample_loss_for, per_example_problem, _tensors and
    derive_seed."""

    def __init__(self):
        self.built, self.moved, self.losses, self.problems, self.tensors, self.seeds = [], [], [], [], [], []
        self.problem_args = []


def linear_model(d, out, moved):
    class Recorded(nn.Linear):
        def to(self, *args, **kwargs):
            moved.append((args, kwargs))
            return super().to(*args, **kwargs)

    return Recorded(d, out, bias=False).double()


@pytest.fixture
def cell(monkeypatch):
    """measure_cell on a linear model without bias, with spies on what it builds, and a stand-in study."""

    def run(x, y, checkpoints, batch_size=4, *, task="regression", kind="linear", study_seeds=(3,), steps=None,
            problem="", loss=squared_error, model_spec=None, **kwargs):
        rec = Recorder()
        data = dataset(x, y, task)
        d = x.shape[1]
        out = int(y.max()) + 1 if task == "classification" else 1
        real_tensors, real_derive = noise._tensors, noise.derive_seed

        def build(*args):
            rec.built.append(args)
            return linear_model(d, out, rec.moved)

        def loss_for(spec, seed):
            rec.losses.append((spec, seed))
            return loss

        def problem_of(model, loss_fn, xb, yb):
            rec.problems.append((len(xb), len(yb)))
            rec.problem_args.append((model.weight.detach().numpy().copy(), loss_fn))
            return problem

        def tensors(data_, idx, classifier, device):
            rec.tensors.append(device)
            return real_tensors(data_, idx, classifier, device)

        def derive(*parts):
            rec.seeds.append(parts)
            return real_derive(*parts)

        monkeypatch.setattr(noise, "build_model", build)
        monkeypatch.setattr(noise, "sample_loss_for", loss_for)
        monkeypatch.setattr(noise, "per_example_problem", problem_of)
        monkeypatch.setattr(noise, "_tensors", tensors)
        monkeypatch.setattr(noise, "derive_seed", derive)
        spec_model = model_spec if model_spec is not None else SimpleNamespace(kind=kind)
        study = SimpleNamespace(is_classifier=task == "classification", model=spec_model, seeds=list(study_seeds),
                                budget=SimpleNamespace(steps=steps or (lambda b, n: 100)))
        options = {k: kwargs.pop(k) for k in ("measure_init", "spread", "noise") if k in kwargs}
        spec = GradientNoise(**{"eval_samples": len(x), "spread_batch_sizes": [1, 2], "spread_draws": 3, **kwargs})
        stats, spread = noise.measure_cell(study, spec, data, batch_size, checkpoints, torch.device("cpu"), **options)
        return stats, spread, rec

    return run


def state(theta):
    theta = np.atleast_2d(theta)
    return {"weight": torch.tensor(theta, dtype=torch.float64)}


THETAS = {"0": [0.0, 0.0, 0.0, 0.0, 0.0], "1e-05": [0.1, 0.1, 0.1, 0.1, 0.1], "0.25": [0.2, -1.0, 1.5, 0.7, 1.0],
          "1": [0.9, -1.8, 0.6, 0.1, 2.5]}


def test_checkpoints_are_measured_in_order_of_fraction_with_init_by_default_and_skipped_on_request(cell):
    """Fraction keys as the trainer writes them (f"{f:g}": "1e-05" sorts after "1" as text) and given out of order;
    each row holds the closed form at its own weights. The step is the recorded one, else round(f x the budget's
    steps(B, n_train)), here 100 n + B = 2004 for n = 20, B = 4."""
    x, y = regression()
    order = ["1", "0", "1e-05", "0.25"]
    checkpoints = {"seed3": {f: state(THETAS[f]) for f in order}, "steps": {"seed3": {"0.25": 37}}}
    stats, spread, _ = cell(x, y, checkpoints, steps=lambda b, n: 100 * n + b)
    assert stats["fraction"].tolist() == [0.0, 1e-05, 0.25, 1.0]
    assert stats["step"].tolist() == [0, 0, 37, 2004]
    assert (stats["batch_size"] == 4).all() and (stats["seed"] == 3).all()
    for (_, row), f in zip(stats.iterrows(), ["0", "1e-05", "0.25", "1"]):
        trace, grad_sq = noise_terms(per_example(x, y, np.array(THETAS[f])))
        assert row["trace_sigma"] == pytest.approx(trace, rel=1e-9)
        assert row["grad_sq"] == pytest.approx(grad_sq, rel=1e-9)
    # every checkpoint's spread rows are kept: 2 sweep sizes and the own batch size, per checkpoint
    assert spread["fraction"].tolist() == [f for f in [0.0, 1e-05, 0.25, 1.0] for _ in range(3)]
    assert spread["step"].tolist() == [s for s in [0, 0, 37, 2004] for _ in range(3)]

    later, _, _ = cell(x, y, checkpoints, steps=lambda b, n: 100 * n + b, measure_init=False, spread=False)
    assert later["fraction"].tolist() == [1e-05, 0.25, 1.0]


def test_steps_without_a_record_for_the_seed_or_at_all_come_from_the_budget(cell):
    """No "steps" entry at all, or one for another seed only: every step is round(f x steps(B, n_train))."""
    x, y = regression()
    states = {f: state(THETAS[f]) for f in ["0.25", "1"]}
    budget = lambda b, n: 100 * n + b  # noqa: E731
    for checkpoints in ({"seed3": states}, {"seed3": states, "steps": {"seed9": {"0.25": 7}}}):
        stats, _, _ = cell(x, y, checkpoints, batch_size=8, steps=budget, spread=False)
        assert stats["step"].tolist() == [round(0.25 * 2008), 2008]


def test_only_the_first_spec_seeds_are_measured_each_from_its_own_checkpoints(cell):
    """Seeds 3, 4 and 5 with seeds = 2: rows for 3 and 4, each the closed form at its own checkpoint's weights."""
    x, y = regression()
    checkpoints = {"seed3": {"0.25": state(THETAS["0.25"])}, "seed4": {"0.25": state(THETAS["1"])},
                   "seed5": {"0.25": state(THETAS["1e-05"])}}
    stats, _, _ = cell(x, y, checkpoints, study_seeds=(3, 4, 5), seeds=2, spread=False)
    assert stats["seed"].tolist() == [3, 4]
    for (_, row), f in zip(stats.iterrows(), ["0.25", "1"]):
        trace, _ = noise_terms(per_example(x, y, np.array(THETAS[f])))
        assert row["trace_sigma"] == pytest.approx(trace, rel=1e-9)


def test_the_per_example_row_carries_the_jackknife_and_the_sweep_its_theory_line(cell):
    """n = 20 examples in 16 groups (j mod 16): the jackknife's log SE recomputed by leaving each group's examples
    out; the sweep's theory line is the mean over parameters of sqrt(var_ddof1 / B x (n - B)/(n - 1)), drawn
    without replacement from the evaluation subset; every spread row keeps the run's own training batch size."""
    x, y = regression()
    n = len(x)
    theta = np.array(THETAS["0.25"])
    g = per_example(x, y, theta)
    stats, spread, _ = cell(x, y, {"seed3": {"0.25": state(theta)}}, batch_size=6, spread_batch_sizes=[2, 5])
    row = stats.iloc[0]
    log_se, groups = jackknife_log_se(g)
    assert groups == 16 and row["jackknife_groups"] == 16 and row["jackknife_unstable"] == 0
    assert row["b_simple_log_se"] == pytest.approx(log_se, rel=1e-9)
    var1 = g.var(0, ddof=1)
    sweep = spread[spread["probe"] == "sweep"]
    assert sweep["probe_batch_size"].tolist() == [2, 5]
    for b, theory in zip([2, 5], sweep["spread_theory"]):
        assert theory == pytest.approx(np.sqrt(var1 / b * (n - b) / (n - 1)).mean(), rel=1e-9)
    assert (spread["batch_size"] == 6).all() and spread["probe"].tolist() == ["sweep", "sweep", "own"]
    assert spread["probe_batch_size"].tolist() == [2, 5, 6]


def test_the_two_batch_row_has_no_jackknife(cell):
    x, y = regression()
    stats, _, _ = cell(x, y, {"seed3": {"0.25": state(THETAS["0.25"])}}, method="two_batch", two_batch_sizes=(2, 8),
                       two_batch_draws=4, spread=False)
    row = stats.iloc[0]
    assert row["method"] == "two_batch" and math.isnan(row["b_simple_log_se"])
    assert row["jackknife_groups"] == 0 and row["jackknife_unstable"] == 0


def test_a_contrastive_model_gets_no_noise_statistics_but_its_spread(cell):
    """In-batch negatives: per-example gradients do not apply, so the row is NaN with its reason; the spread is
    still measured, without a theory line (no per-example variance)."""
    x, y = regression()
    stats, spread, rec = cell(x, y, {"seed3": {"0.25": state(THETAS["0.25"])}}, kind="contrastive")
    row = stats.iloc[0]
    assert row["method"] == "not defined (in-batch loss)"
    for col in ["grad_sq", "trace_sigma", "b_simple", "b_simple_log_se"]:
        assert math.isnan(row[col]), col
    assert row["jackknife_groups"] == 0 and row["jackknife_unstable"] == 0
    assert spread["probe"].tolist() == ["sweep", "sweep", "own"]
    assert np.isfinite(spread["spread"]).all() and spread["spread_theory"].isna().all()
    assert rec.problems == []


def test_a_factory_model_torch_func_refuses_is_skipped_with_its_reason_tried_once_per_cell(cell):
    """A `python` model is tried once per cell, on the first checkpoint's model and 8 of its examples; its reason
    becomes the method, and the statistics are NaN. When it works, the per-example statistics are the closed form."""
    x, y = regression()
    checkpoints = {"seed3": {"0.25": state(THETAS["0.25"]), "1": state(THETAS["1"])}}
    stats, spread, rec = cell(x, y, checkpoints, kind="python", problem="torch.func cannot: X")
    assert rec.problems == [(8, 8)]
    weight, loss_fn = rec.problem_args[0]
    assert weight.tolist() == [THETAS["0.25"]] and loss_fn is squared_error
    assert stats["method"].tolist() == ["skipped: torch.func cannot: X"] * 2
    assert stats[["grad_sq", "trace_sigma", "b_simple", "b_simple_log_se"]].isna().all().all()
    assert spread["spread_theory"].isna().all()

    stats, _, rec = cell(x, y, checkpoints, kind="python", problem="", spread=False)
    assert rec.problems == [(8, 8)] and stats["method"].tolist() == ["per_example"] * 2
    for (_, row), f in zip(stats.iterrows(), ["0.25", "1"]):
        trace, grad_sq = noise_terms(per_example(x, y, np.array(THETAS[f])))
        assert row["trace_sigma"] == pytest.approx(trace, rel=1e-9)
        assert row["grad_sq"] == pytest.approx(grad_sq, rel=1e-9)
    # only a python model with the per-example method is tried
    _, _, rec = cell(x, y, checkpoints, kind="python", problem="no", method="two_batch", two_batch_sizes=(2, 8),
                     two_batch_draws=2, spread=False)
    assert rec.problems == []
    stats, _, rec = cell(x, y, checkpoints, kind="linear", problem="no", spread=False)
    assert rec.problems == [] and stats["method"].tolist() == ["per_example"] * 2


def test_without_noise_only_the_own_probe_and_without_spread_no_spread(cell):
    """noise=False (the equal-steps arm): no statistics, one own-batch-size row per checkpoint without a theory line;
    spread=False: the statistics and no spread rows."""
    x, y = regression()
    checkpoints = {"seed3": {"0.25": state(THETAS["0.25"]), "1": state(THETAS["1"])}}
    stats, spread, _ = cell(x, y, checkpoints, noise=False)
    assert stats.empty
    assert spread["probe"].tolist() == ["own", "own"] and spread["fraction"].tolist() == [0.25, 1.0]
    assert spread["probe_batch_size"].tolist() == [4, 4] and spread["spread_theory"].isna().all()
    stats, spread, _ = cell(x, y, checkpoints, spread=False)
    assert len(stats) == 2 and spread.empty


def test_a_classifier_gets_its_class_count_long_labels_and_the_softmax_closed_form(cell):
    """Softmax regression without bias, K = 3 classes stored as int32 (cross-entropy takes only int64 targets, in the
    statistics and in the own probe's draws from the training split): g_i = (softmax(W x_i) - e_(y_i)) x_i^T.
    build_model is asked for the sample shape (d,) and K classes."""
    rng = np.random.default_rng(7)
    n, d, k = 20, 4, 3
    x = rng.standard_normal((n, d))
    labels = (np.arange(n) % k).astype(np.int32)
    w = rng.standard_normal((k, d))
    spec = MLPClassifier(kind="mlp")
    stats, _, rec = cell(x, labels, {"seed3": {"0.25": state(w)}}, task="classification", model_spec=spec,
                         loss=sample_loss_for(spec))
    assert rec.built == [(spec, (d,), k)] and rec.losses[0][0] is spec
    logits = x @ w.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = ((p - np.eye(k)[labels])[:, :, None] * x[:, None, :]).reshape(n, k * d)
    trace, grad_sq = noise_terms(g)
    row = stats.iloc[0]
    assert row["trace_sigma"] == pytest.approx(trace, rel=1e-9)
    assert row["grad_sq"] == pytest.approx(grad_sq, rel=1e-9)
    assert row["eval_loss"] == pytest.approx(-np.log(p[np.arange(n), labels]).mean(), rel=1e-9)


def test_tensors_and_the_model_are_put_on_the_given_device(cell):
    """The evaluation subset, the training split and each checkpoint's model go to the device the caller names
    (a CPU here, so the spies read what was asked); _tensors itself on torch's `meta` device."""
    x, y = regression()
    _, _, rec = cell(x, y, {"seed3": {"0.25": state(THETAS["0.25"])}}, spread=False)
    assert rec.tensors == [torch.device("cpu")] * 2
    assert rec.moved == [((torch.device("cpu"),), {})]
    data = dataset(x, np.arange(len(x)) % 2, "classification")
    xt, yt = noise._tensors(data, np.array([0, 3, 4]), True, torch.device("meta"))
    assert xt.device.type == yt.device.type == "meta" and xt.shape == (3, 5) and yt.dtype == torch.int64


def test_each_random_stream_is_keyed_by_seed_training_batch_size_and_fraction(cell):
    """The loss's augmentations, the draws of the estimator and the sweep, and the own probe's draws: each stream's
    seed is derived from (seed, training batch size, fraction) and a name of its own, so no two runs, checkpoints
    or streams share draws."""
    x, y = regression()
    _, _, rec = cell(x, y, {"seed3": {"0.25": state(THETAS["0.25"])}}, batch_size=6)
    assert len(rec.seeds) == 3 and all(len(parts) == 4 and parts[:3] == (3, 6, 0.25) for parts in rec.seeds)
    assert len({parts[3] for parts in rec.seeds}) == 3
    assert rec.losses[0][1] in {derive_seed(*parts) for parts in rec.seeds}


def test_the_evaluation_subset_is_a_fixed_sorted_sample_of_the_training_split(cell):
    """eval_samples of the training split, without repeats, sorted, the same on every call; the cell's statistics are
    the closed form over those rows."""
    x, y = regression(n=30)
    data = dataset(x, y)
    idx = noise.eval_subset(data, 12)
    assert len(idx) == 12 and len(set(idx.tolist())) == 12 and (np.diff(idx) > 0).all()
    assert set(idx.tolist()) <= set(data.indices("train").tolist())
    assert np.array_equal(idx, noise.eval_subset(data, 12))
    assert np.array_equal(noise.eval_subset(data, 30), data.indices("train"))
    stats, _, _ = cell(x, y, {"seed3": {"0.25": state(THETAS["0.25"])}}, eval_samples=12, spread=False)
    trace, grad_sq = noise_terms(per_example(x[idx], y[idx], np.array(THETAS["0.25"])))
    assert stats.iloc[0]["eval_samples"] == 12
    assert stats.iloc[0]["trace_sigma"] == pytest.approx(trace, rel=1e-9)
    assert stats.iloc[0]["grad_sq"] == pytest.approx(grad_sq, rel=1e-9)


def test_seeds_at_the_same_weights_draw_their_own_minibatches_and_a_rerun_draws_the_same(cell):
    """Two seeds whose checkpoints hold the same weights: the two-batch estimate, the sweep and the own probe each
    come from the seed's own draws, so they differ between the seeds (8 draws of 20 examples: the same draws for both
    seeds have probability about 20^-8).
    A rerun after the global torch stream moved gives the same numbers: nothing draws from the global stream."""
    x, y = regression()
    same = state(THETAS["0.25"])
    checkpoints = {"seed3": {"0.25": same}, "seed4": {"0.25": same}}
    options = dict(study_seeds=(3, 4), seeds=2, method="two_batch", two_batch_sizes=(2, 8), two_batch_draws=4,
                   spread_draws=8)
    stats, spread, _ = cell(x, y, checkpoints, **options)
    assert stats["trace_sigma"].nunique() == 2 and stats["grad_sq"].nunique() == 2
    for probe, size in [("sweep", 1), ("sweep", 2), ("own", 4)]:
        rows = spread[(spread["probe"] == probe) & (spread["probe_batch_size"] == size)]
        assert rows["seed"].tolist() == [3, 4] and rows["spread"].nunique() == 2, (probe, size)
    torch.manual_seed(12345)
    again_stats, again_spread, _ = cell(x, y, checkpoints, **options)
    assert again_stats[["trace_sigma", "grad_sq"]].equals(stats[["trace_sigma", "grad_sq"]])
    assert again_spread["spread"].tolist() == spread["spread"].tolist()


def test_the_default_sweep_is_the_powers_of_two_up_to_a_quarter_of_the_subset(cell):
    """20 evaluation examples: probe sizes 1, 2 and 4 (a quarter is 5)."""
    x, y = regression()
    _, spread, _ = cell(x, y, {"seed3": {"0.25": state(THETAS["0.25"])}}, spread_batch_sizes=None)
    assert spread[spread["probe"] == "sweep"]["probe_batch_size"].tolist() == [1, 2, 4]
