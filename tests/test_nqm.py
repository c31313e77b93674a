"""The noisy quadratic model: its exact expected-loss recursions (additive and regression forms), its data and its
two learners (quadratic, linear), with known answers; and how real runs of the additive form follow the exact curve."""

import copy
import math

import numpy as np
import pytest
import torch

from batchlab.analysis import nqm
from batchlab.analysis.cbs import fit_steps_model
from batchlab.analysis.targets import constant_prediction_loss
from batchlab.config import ConfigError, DiagonalQuadratic, LinearRegression, NoisyQuadraticData, Study, validate_config
from batchlab.data import load_dataset, make_dataset, save_dataset
from batchlab.data.inspect import inspect_files
from batchlab.nets.models import build_model
from batchlab.nets.objectives import sample_loss_for
from batchlab.training.engine import train_runs
from batchlab.training.reference import train_run
from batchlab.training.run import StopAt

CPU = torch.device("cpu")
LINEAR = LinearRegression(kind="linear")
QUADRATIC = DiagonalQuadratic(kind="quadratic")
SPEC = NoisyQuadraticData(name="noisy_quadratic", n_features=16, n_samples=20000, noise=0.5, scale=2.0)
REGRESSION = SPEC.model_copy(update={"form": "regression"})


# ---------------------------------------------------------------- the recursions


def _simulate_additive(h, e0, sigma, lr, batch_size, steps, runs, rng):
    """Independent SGD runs of the quadratic on fresh samples z ~ N(w*, sigma^2 / h): each run's population loss
    after every step [runs, steps + 1] and its final error."""
    e = np.tile(e0, (runs, 1))
    floor = len(h) * sigma**2 / 2
    losses = [0.5 * (e**2) @ h + floor]
    for _ in range(steps):
        z_minus_w_star = rng.standard_normal((runs, batch_size, len(h))) * (sigma / np.sqrt(h))
        e = e - lr * h * (e - z_minus_w_star.mean(1))  # the mean of h (w - z) over the batch
        losses.append(0.5 * (e**2) @ h + floor)
    return np.stack(losses, axis=1), e


def _simulate_regression(h, e0, sigma, lr, batch_size, steps, runs, rng):
    """Independent SGD runs on fresh Gaussian samples: each run's population loss after every step [runs, steps + 1]."""
    root = np.sqrt(h)
    e = np.tile(e0, (runs, 1))
    losses = [0.5 * (e**2) @ h + 0.5 * sigma**2]
    for _ in range(steps):
        x = rng.standard_normal((runs, batch_size, len(h))) * root
        residual = np.einsum("rbd,rd->rb", x, e) - sigma * rng.standard_normal((runs, batch_size))  # w.x - y
        e = e - lr * np.einsum("rbd,rb->rd", x, residual) / batch_size
        losses.append(0.5 * (e**2) @ h + 0.5 * sigma**2)
    return np.stack(losses, axis=1), e


@pytest.mark.parametrize("form, simulate", [("additive", _simulate_additive), ("regression", _simulate_regression)])
def test_the_recursion_is_the_mean_of_many_sgd_runs(form, simulate):
    h, sigma, lr, batch_size, steps, runs = nqm.spectrum(4, 1.5), 0.5, 0.6, 3, 8, 20000
    rng = np.random.default_rng(0)
    e0 = -np.sqrt(nqm.initial_error(h, 1.0)) * rng.choice([-1.0, 1.0], len(h))  # e0 = -w*, off-diagonal moments nonzero
    losses, e = simulate(h, e0, sigma, lr, batch_size, steps, runs, rng)
    exact = nqm.expected_losses(h, e0**2, sigma**2, lr, batch_size, steps, form=form)
    z = (losses.mean(0) - exact)[1:] / (losses.std(0, ddof=1)[1:] / math.sqrt(runs))
    assert np.abs(z).max() < 4.5, z
    floor = nqm.loss_floor(h, sigma**2, form)
    assert exact[-1] - floor < 0.5 * (exact[0] - floor)  # the case moved: the noise terms matter, not a still loss
    m = nqm.error_moments(h, e0**2, sigma**2, lr, batch_size, steps, form=form)
    z_m = ((e**2).mean(0) - m) / ((e**2).std(0, ddof=1) / math.sqrt(runs))
    assert np.abs(z_m).max() < 4.5, z_m


def test_the_additive_recursion_in_one_dimension_is_a_geometric_series():
    h, m0, sigma2, lr, b, steps = np.array([0.7]), np.array([2.0]), 0.3, 0.4, 5, 50
    a = (1 - lr * h[0]) ** 2  # the noise does not depend on the error
    c = lr**2 * sigma2 * h[0] / b
    fixed = c / (1 - a)
    t = np.arange(steps + 1)
    closed = 0.5 * h[0] * (a**t * (m0[0] - fixed) + fixed) + sigma2 / 2
    assert nqm.expected_losses(h, m0, sigma2, lr, b, steps) == pytest.approx(closed, rel=1e-12)
    target = 0.5 * (closed[20] + closed[21])  # between steps 20 and 21 of a falling curve
    assert nqm.exact_steps_to_target(h, m0, sigma2, lr, b, target, 100) == 21
    assert nqm.exact_steps_to_target(h, m0, sigma2, lr, b, target, 20) == math.inf  # the cap binds
    assert nqm.exact_steps_to_target(h, m0, sigma2, lr, b, closed[0], 10) == 0  # reached before any step
    below_floor = 0.5 * (closed[-1] + sigma2 / 2)
    assert nqm.exact_steps_to_target(h, m0, sigma2, lr, b, below_floor, 10**4) == math.inf


def test_the_regression_recursion_in_one_dimension_is_a_geometric_series():
    h, m0, sigma2, lr, b, steps = np.array([0.7]), np.array([2.0]), 0.3, 0.4, 5, 50
    a = (1 - lr * h[0]) ** 2 + 2 * lr**2 * h[0] ** 2 / b  # h^2 m + h (h m) = 2 h^2 m in one dimension
    c = lr**2 * sigma2 * h[0] / b
    fixed = c / (1 - a)
    t = np.arange(steps + 1)
    closed = 0.5 * h[0] * (a**t * (m0[0] - fixed) + fixed) + sigma2 / 2
    assert nqm.expected_losses(h, m0, sigma2, lr, b, steps, form="regression") == pytest.approx(closed, rel=1e-12)
    target = 0.5 * (closed[20] + closed[21])
    assert nqm.exact_steps_to_target(h, m0, sigma2, lr, b, target, 100, form="regression") == 21


@pytest.mark.parametrize("form", nqm.FORMS)
def test_a_rate_past_stability_diverges(form):
    h = nqm.spectrum(8, 1.0)
    target = nqm.loss_floor(h, 1.0, form) + 0.5
    assert nqm.exact_steps_to_target(h, nqm.initial_error(h, 1.0), 1.0, 2.5 / h.max(), 64, target, 10**4, form) == math.inf


def test_noise_scales_of_hand_computed_cases():
    h, m = np.array([1.0, 0.5]), np.array([2.0, 2.0])
    # additive, sigma^2 = 1: Sigma = h = (1, 0.5), |G|^2 = 2 + 0.5, G^T H G = 2 + 0.25; B_simple = 1.5 / 2.5,
    # B_noise = (1 + 0.25) / 2.25
    b_simple, b_noise = nqm.noise_scales(h, m, 1.0)
    assert b_simple == pytest.approx(0.6, rel=1e-14) and b_noise == pytest.approx(1.25 / 2.25, rel=1e-14)
    # regression: h.m = 3, Sigma = h^2 m + 3 h + h = (6, 2.5); B_simple = 8.5 / 2.5, B_noise = (6 + 1.25) / 2.25
    b_simple, b_noise = nqm.noise_scales(h, m, 1.0, form="regression")
    assert b_simple == pytest.approx(3.4, rel=1e-14) and b_noise == pytest.approx(7.25 / 2.25, rel=1e-14)
    # at w = 0 (m0 = scale^2 / h) the additive B_simple is sigma^2 / scale^2, whatever the spectrum
    h = nqm.spectrum(32, 1.5)
    assert nqm.noise_scales(h, nqm.initial_error(h, 2.0), 3.0)[0] == pytest.approx(0.75, rel=1e-13)


def test_spectrum_initial_error_and_floors():
    h = nqm.spectrum(4, 2.0)
    assert h == pytest.approx([1, 1 / 4, 1 / 9, 1 / 16], rel=1e-15)
    m0 = nqm.initial_error(h, 0.5)
    assert 0.5 * h * m0 == pytest.approx(np.full(4, 0.125), rel=1e-15)  # the same excess loss in every direction
    assert nqm.expected_losses(h, m0, 2.0, 0.1, 1, 0)[0] == pytest.approx(4 * 0.125 + 4 * 1.0, rel=1e-15)  # d sigma^2 / 2
    assert nqm.expected_losses(h, m0, 2.0, 0.1, 1, 0, form="regression")[0] == pytest.approx(4 * 0.125 + 1.0, rel=1e-15)
    with pytest.raises(ValueError, match="power > 0"):
        nqm.spectrum(4, 0.0)
    with pytest.raises(ValueError, match="form must be one of"):
        nqm.expected_losses(h, m0, 2.0, 0.1, 1, 3, form="multiplicative")


@pytest.mark.parametrize("form", nqm.FORMS)
def test_a_grid_is_the_calls_one_by_one(form):
    h = nqm.spectrum(6, 1.5)
    m0, lrs, sizes = nqm.initial_error(h, 1.0), np.array([0.05, 0.3, 1.0, 1.9, 2.5]), np.array([1, 4, 32])
    target = nqm.loss_floor(h, 1.0, form) + 0.6
    grid = nqm.exact_steps_to_target(h, m0, 1.0, lrs[None, :], sizes[:, None], target, 2000, form)
    one_by_one = [[nqm.exact_steps_to_target(h, m0, 1.0, lr, b, target, 2000, form) for lr in lrs] for b in sizes]
    assert np.array_equal(grid, np.array(one_by_one))
    curves = nqm.expected_losses(h, m0, 1.0, lrs, 4, 30, form)
    assert curves.shape == (5, 31)
    assert curves[2] == pytest.approx(nqm.expected_losses(h, m0, 1.0, 1.0, 4, 30, form), rel=1e-13)


def test_tuned_steps_fall_with_batch_size_and_a_one_rate_grid_is_that_rate():
    h = nqm.spectrum(8, 1.5)
    m0 = nqm.initial_error(h, 1.0)
    target = nqm.loss_floor(h, 1.0) + 0.01 * 4.0
    sizes = 2 ** np.arange(9)
    steps, best = nqm.tuned_steps_to_target(h, m0, 1.0, sizes, target, 5000)
    assert np.isfinite(steps).all() and (np.diff(steps) <= 0).all() and steps[0] > 2 * steps[-1]
    assert (np.diff(best) >= 0).all()  # larger batches take larger rates
    fixed = {b: nqm.exact_steps_to_target(h, m0, 1.0, 0.37, b, target, 5000) for b in (1, 16, 256)}
    assert fixed[1] == math.inf and fixed[256] <= fixed[16] < math.inf  # at batch size 1 this rate's floor is too high
    for b, s in fixed.items():
        one, lr = nqm.tuned_steps_to_target(h, m0, 1.0, b, target, 5000, lrs=[0.37])
        assert one == s and (lr == 0.37 if math.isfinite(s) else math.isnan(lr))
    never, lr = nqm.tuned_steps_to_target(h, m0, 1.0, 1, nqm.loss_floor(h, 1.0) - 0.1, 100)  # below the floor
    assert never == math.inf and math.isnan(lr)
    # the regression form's figures of the same case (its noise grows with the error, so it needs more steps)
    reg = {b: nqm.exact_steps_to_target(h, m0, 1.0, 0.37, b, 0.5 + 0.04, 5000, "regression") for b in (1, 16, 256)}
    assert reg == {1: math.inf, 16: 105, 256: 94}


def test_the_design_case():
    """Additive, d = 32, power 1.5, sigma 1, scale 1, target 1% of the initial excess loss: B_crit 11.2, S_min 142."""
    h = nqm.spectrum(32, 1.5)
    m0 = nqm.initial_error(h, 1.0)
    assert nqm.expected_losses(h, m0, 1.0, 0.1, 1, 0)[0] == 32.0 and nqm.loss_floor(h, 1.0) == 16.0
    sizes = 2.0 ** np.arange(1, 9)
    steps, lrs = nqm.tuned_steps_to_target(h, m0, 1.0, sizes, 16.0 + 0.01 * 16, 3000)
    assert list(steps) == [949, 537, 336, 241, 194, 169, 155, 146]
    fit = fit_steps_model(sizes, steps)
    assert fit.b_crit == pytest.approx(11.2, rel=0.01) and fit.s_min == pytest.approx(142, rel=0.01)
    assert fit.rmse_log < 0.02  # S(B) = S_min (1 + B_crit / B) describes the exact curve
    assert lrs[3] == pytest.approx(1.37, rel=0.01)  # batch size 16
    at_target = nqm.error_moments(h, m0, 1.0, lrs[3], 16, int(steps[3]))
    b_simple, b_noise = nqm.noise_scales(h, at_target, 1.0)
    assert b_noise == pytest.approx(8.64, rel=0.01) and b_simple == pytest.approx(15.3, rel=0.01)


# ---------------------------------------------------------------- the data and the models


@pytest.fixture(scope="module")
def data():
    return make_dataset(SPEC)


@pytest.fixture(scope="module")
def regression_data():
    return make_dataset(REGRESSION)


def _val_loss(ds, spec, model) -> float:
    va = ds.indices("val")
    x, y = torch.as_tensor(ds.x[va]), torch.as_tensor(ds.labels["y"][va])
    with torch.no_grad():
        return float(sample_loss_for(spec)(model, x, y).double().mean())


def test_the_additive_validation_split_has_exact_moments(data):
    h, w_star = (np.array(data.source["nqm"][k]) for k in ("spectrum", "w_star"))
    assert data.source["nqm"]["form"] == "additive" and h == pytest.approx(nqm.spectrum(16, 1.5), rel=1e-15)
    z = data.x[data.indices("val")].astype(float)
    assert z.mean(0) == pytest.approx(w_star, rel=1e-6, abs=1e-6)
    dev = z - w_star
    cov = dev.T @ dev / len(z)
    assert np.diag(cov) == pytest.approx(0.25 / h, rel=1e-6)  # sigma^2 / h_j
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-5  # uncorrelated columns
    assert not data.labels["y"].any() and data.tasks == {"y": "regression"} and data.synthetic


def test_the_validation_loss_is_the_population_loss(data):
    """Through the real model and objective: w = 0 and a random w give 0.5 e^T H e + d sigma^2 / 2 to float32."""
    h, w_star = (np.array(data.source["nqm"][k]) for k in ("spectrum", "w_star"))
    model = build_model(QUADRATIC, tuple(data.x.shape[1:]), data.n_classes())
    assert [n for n, _ in model.named_parameters()] == ["w"] and not list(model.buffers())
    assert model(torch.as_tensor(data.x[:5])).shape == (5, 16) and model.encode(torch.as_tensor(data.x[:5])).shape == (5, 1)
    floor = 16 * 0.25 / 2
    m0 = nqm.initial_error(h, 2.0)
    assert w_star**2 == pytest.approx(m0, rel=1e-12)  # the zero model's error is -w*
    assert _val_loss(data, QUADRATIC, model) == pytest.approx(float(nqm.expected_loss(h, m0, 0.25)), rel=1e-6)
    assert _val_loss(data, QUADRATIC, model) == pytest.approx(16 * 2.0 + floor, rel=1e-6)
    w = np.random.default_rng(3).standard_normal(16).astype(np.float32)
    with torch.no_grad():
        model.w.copy_(torch.as_tensor(w))
    e = w.astype(float) - w_star
    assert _val_loss(data, QUADRATIC, model) == pytest.approx(0.5 * np.sum(h * e**2) + floor, rel=1e-6)
    # the gradient of the mean loss over a batch is H (w - mean z)
    z = torch.as_tensor(data.x[:64])
    sample_loss_for(QUADRATIC)(model, z, torch.zeros(64)).mean().backward()
    expected = h * (w.astype(float) - data.x[:64].astype(float).mean(0))
    assert model.w.grad.double().numpy() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_per_example_gradient_statistics_of_the_validation_split_are_the_exact_noise_scale(data):
    """At w = 0 on the validation split (exact moments): tr(Sigma) = n / (n - 1) sigma^2 tr(H) (the unbiased
    estimate of sigma^2 tr(H)), the mean gradient is -H w*, and B_simple is nqm.noise_scales' sigma^2 / scale^2."""
    from batchlab.measure.gradients import per_example_stats

    h, w_star = (np.array(data.source["nqm"][k]) for k in ("spectrum", "w_star"))
    va = data.indices("val")
    n = len(va)
    model = build_model(QUADRATIC, (16,))
    st = per_example_stats(model, sample_loss_for(QUADRATIC), torch.as_tensor(data.x[va]), torch.zeros(n))
    trace = n / (n - 1) * 0.25 * h.sum()
    assert st.trace_sigma == pytest.approx(trace, rel=1e-5)
    assert st.grad_sq == pytest.approx(np.sum(h**2 * w_star**2) - trace / n, rel=1e-5)
    assert st.b_simple == pytest.approx(nqm.noise_scales(h, nqm.initial_error(h, 2.0), 0.25)[0], rel=1e-3)


def test_training_samples_are_drawn_around_w_star(data):
    h, w_star = (np.array(data.source["nqm"][k]) for k in ("spectrum", "w_star"))
    z = data.x[data.indices("train")].astype(float)
    se = 0.5 / np.sqrt(h * len(z))
    assert (np.abs(z.mean(0) - w_star) < 5 * se).all()
    assert z.var(0) * h / 0.25 == pytest.approx(np.ones(16), abs=0.05)
    assert data.x.dtype == np.float32 and [len(data.indices(p)) for p in ("train", "val", "test")] == [16000, 2000, 2000]


def test_the_regression_validation_loss_is_the_population_loss(regression_data):
    data = regression_data
    h, w_star = (np.array(data.source["nqm"][k]) for k in ("spectrum", "w_star"))
    assert data.source["nqm"]["form"] == "regression" and data.labels["y"].any()
    model = build_model(LINEAR, tuple(data.x.shape[1:]), data.n_classes())
    assert model(torch.as_tensor(data.x[:5])).shape == (5,)
    m0 = nqm.initial_error(h, 2.0)
    assert _val_loss(data, LINEAR, model) == pytest.approx(float(nqm.expected_loss(h, m0, 0.25, "regression")), rel=2e-6)
    w = np.random.default_rng(3).standard_normal(16).astype(np.float32)
    with torch.no_grad():
        model.linear.weight.copy_(torch.as_tensor(w)[None])
    e = w.astype(float) - w_star
    assert _val_loss(data, LINEAR, model) == pytest.approx(0.5 * np.sum(h * e**2) + 0.125, rel=2e-6)


def test_regression_inputs_have_covariance_h(regression_data):
    h = nqm.spectrum(16, 1.5)
    x = regression_data.x[regression_data.indices("train")].astype(float)
    cov = x.T @ x / len(x)
    se = np.sqrt((np.outer(h, h) + np.diag(h**2)) / len(x))  # Var(x_i x_j) = h_i h_j (+ h_i^2 on the diagonal)
    assert np.abs(cov - np.diag(h)).max() < 0.05 and (np.abs(cov - np.diag(h)) < 5 * se).all()


def test_the_data_are_seeded_and_keep_their_model_when_saved(data, tmp_path):
    again = make_dataset(SPEC)
    assert np.array_equal(again.x, data.x) and np.array_equal(again.labels["y"], data.labels["y"])
    assert not np.array_equal(make_dataset(SPEC.model_copy(update={"seed": 1})).x, data.x)
    save_dataset(data, tmp_path / "nqm.npz")
    loaded = load_dataset(tmp_path / "nqm.npz")
    assert loaded.source == data.source and np.array_equal(loaded.split, data.split)


def test_the_baselines(data, regression_data):
    """The quadratic's is the zero model (its initial loss); the linear model's the mean of y."""
    assert constant_prediction_loss(data, QUADRATIC, "val") == pytest.approx(16 * 2.0 + 16 * 0.125, rel=1e-9)
    y = regression_data.labels["y"].astype(float)
    mean = y[regression_data.indices("train")].mean()
    expected = 0.5 * np.mean((y[regression_data.indices("val")] - mean) ** 2)
    assert constant_prediction_loss(regression_data, LINEAR, "val") == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- training the quadratic


def _quadratic_study(d=8, power=1.5, noise=1.0, n_samples=2000, lr=0.5, steps=30, seeds=(0,), curve_points=10, **extra):
    return Study.model_validate({
        "data": {"name": "noisy_quadratic", "n_features": d, "power": power, "noise": noise, "n_samples": n_samples},
        "model": {"kind": "quadratic", "power": power},
        "optim": {"name": "sgd", "momentum": 0.0, "lr": lr, "lr_rule": "fixed"},
        "budget": {"unit": "steps", "amount": steps},
        "batch_sizes": [4],
        "seeds": list(seeds),
        "curve_points": curve_points,
        **extra,
    })


def test_one_run_is_bitwise_the_same_in_the_reference_trainer_and_the_batched_engine():
    study = _quadratic_study(sharpness={"samples": 64, "iters": 20})
    data = make_dataset(study.data)
    ref = train_run(study, data, 4, 0, CPU, (0.0, 1.0))
    got = train_runs(study, data, 4, [(0.5, 0)], CPU, {0: (0.0, 1.0)})[0]
    skip = {"wall_time_s", "samples_per_s", "peak_mem_mb", "resumed_at_step", "engine", "runs_together"}
    a, b = ({k: v for k, v in r.record.items() if k not in skip} for r in (ref, got))
    assert a == b and ref.curve == got.curve and got.record["engine"] == "batched"
    assert np.array_equal(ref.embeddings, got.embeddings) and ref.embeddings.shape == (2000, 1)
    assert all(torch.equal(ref.checkpoints[f]["w"], got.checkpoints[f]["w"]) for f in (0.0, 1.0))
    assert not ref.checkpoints[0.0]["w"].any() and ref.checkpoints[1.0]["w"].any()  # from w = 0, and it moved
    assert ref.record["val_loss"] < ref.curve[0]["val_loss"]
    assert ref.record["sharpness"] == pytest.approx(1.0, rel=1e-3)  # the Hessian is H: its top eigenvalue h_1 = 1
    together = train_runs(study, data, 4, [(0.5, 0), (0.5, 1), (1.0, 0)], CPU, {0: (1.0,)})  # vmapped over runs
    np.testing.assert_allclose([r["val_loss"] for r in together[0].curve], [r["val_loss"] for r in ref.curve], rtol=1e-6)
    assert together[1].record["val_loss"] != together[0].record["val_loss"]


def _first_crossings(d, power, noise, batch_size, seeds, n_samples):
    """Real runs (batched engine) at the exact tuned rate, stopped at their first logged step at or below the target
    (1% of the initial excess loss above the floor): their steps, the exact expected-loss crossing, rate and target."""
    h = nqm.spectrum(d, power)
    m0 = nqm.initial_error(h, 1.0)
    target = nqm.loss_floor(h, noise**2) + 0.01 * d / 2
    exact, lr = nqm.tuned_steps_to_target(h, m0, noise**2, batch_size, target, 1000)  # both cross below 1000
    steps = int(1.3 * exact)
    study = _quadratic_study(d, power, noise, n_samples, lr, steps, seeds, curve_points=400, sharpness={"samples": 0})
    runs = train_runs(study, make_dataset(study.data), batch_size, [(lr, s) for s in seeds], CPU,
                      {s: (1.0,) for s in seeds}, stop_at=StopAt(target))
    assert all(r.record["reached_target"] for r in runs)
    return np.array([r.record["steps"] for r in runs]), exact, lr, target


def test_typical_runs_of_a_many_direction_quadratic_cross_where_the_expected_loss_does():
    """d = 512, power 0.8, sigma 2, batch size 4, at the exact tuned rate: 4 real runs first reach the target
    within 15% of the exact expected-loss crossing (562 steps) at the median, each within 20%. Its loss is a sum
    over many directions (about 50 effective at this rate), so one run's loss stays near the expected loss; a
    simulation of the same SGD puts the median first passage at about 0.89 of the exact crossing."""
    steps, exact, _, _ = _first_crossings(512, 0.8, 2.0, 4, [0, 1, 2, 3], 6000)
    assert exact == 562
    assert abs(np.median(steps) / exact - 1) < 0.15 and (np.abs(steps / exact - 1) < 0.2).all(), (steps, exact)


def test_typical_runs_of_the_design_case_cross_early_as_simulated():
    """The design case (d = 32, power 1.5) at batch size 4 and the exact tuned rate: real runs first reach the
    target at about 0.77 of the exact expected-loss crossing (537 steps), where a numpy simulation of the same SGD
    says they should. Its loss is dominated by a few directions (about 3 effective at this rate), whose rapidly
    decorrelating fluctuations dip below the target before the expected loss reaches it: a first passage, not an
    error."""
    steps, exact, lr, target = _first_crossings(32, 1.5, 1.0, 4, [0, 1, 2, 3], 4000)
    assert exact == 537
    h = nqm.spectrum(32, 1.5)
    losses, _ = _simulate_additive(h, -np.sqrt(nqm.initial_error(h, 1.0)), 1.0, lr, 4, int(exact), 400,
                                   np.random.default_rng(0))
    simulated = np.argmax(losses <= target, axis=1).astype(float)
    assert (losses <= target).any(axis=1).all()
    assert np.median(steps) == pytest.approx(np.median(simulated), rel=0.1), (steps, np.median(simulated))
    assert 0.65 < np.median(steps) / exact < 0.9 and 0.65 < np.median(simulated) / exact < 0.9


# ---------------------------------------------------------------- the config


STUDY = {
    "data": {"name": "noisy_quadratic", "n_samples": 4000},
    "model": {"kind": "quadratic"},
    "optim": {"name": "sgd", "momentum": 0.0, "lr_rule": "tuned", "lr_grid": [0.1, 0.5, 1.0]},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [2, 8, 32],
    "downstream": {"folds": 3},
    "steps_to_target": {"kind": "baseline_fraction", "value": 0.5},
}


def _validate(edit=lambda s: None):
    study = copy.deepcopy(STUDY)
    edit(study)
    return validate_config({"device": "cpu", "studies": {"nqm": study}}, "c.yaml", inspect=inspect_files)


def _regression(s):
    s["data"]["form"] = "regression"
    s["model"] = {"kind": "linear"}


def test_each_form_validates_with_its_learner():
    study = _validate().studies["nqm"]
    assert isinstance(study.data, NoisyQuadraticData) and study.data.form == "additive"
    assert study.model == QUADRATIC and study.model.latent == 1 and not study.is_classifier
    assert study.data.target_task() == "regression" and study.data.n_train() == 3200
    grid = _validate(lambda s: s.update(scaling={"train_samples": [100, 200]}))
    assert sorted(grid.runnable_studies()) == ["nqm-n100-w1", "nqm-n200-w1"]
    assert _validate(_regression).studies["nqm"].model == LINEAR
    other = _validate(lambda s: (s["data"].update(power=0.8), s["model"].update(power=0.8))).studies["nqm"]
    assert other.model.power == other.data.power == 0.8


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s: s["data"].update(power=0), "field 'data.power': Input should be greater than 0"),
        (lambda s: s["data"].update(power=-1.5), "field 'data.power': Input should be greater than 0"),
        (lambda s: s["model"].update(power=0), "field 'model.power': Input should be greater than 0"),
        (lambda s: s["data"].update(noise=0), "field 'data.noise': Input should be greater than 0"),
        (lambda s: s["data"].update(scale=0), "field 'data.scale': Input should be greater than 0"),
        (lambda s: s["data"].update(form="multiplicative"), "field 'data.form': Input should be 'additive' or 'regression'"),
        (lambda s: s["data"].update(n_features=1), "field 'data.n_features': Input should be greater than or equal to 2"),
        (lambda s: s["data"].update(n_samples=300), "the validation split (30 samples) must exceed n_features (32)"),
        (lambda s: s["data"].update(power=1.0), "model.power (1.5) must equal data.power (1)"),
        (lambda s: s["model"].update(power=2.0), "model.power (2) must equal data.power (1.5)"),
        (lambda s: s["data"].update(form="regression"), "model.kind 'quadratic' learns data.name 'noisy_quadratic' "
         "with data.form 'additive' only"),
        (lambda s: s["data"].update(form="regression"), "got data.form 'regression'"),
        (lambda s: s.update(data={"name": "digits"}), "got data.name 'digits'"),
        (lambda s: s.update(model={"kind": "linear"}), "model.kind 'linear' needs data.form 'regression'"),
        (lambda s: (_regression(s), s["model"].update(init="normal")), "field 'model.init': Input should be 'zeros'"),
        (lambda s: (_regression(s), s.update(data={"name": "digits"})), "model.kind 'linear' is a regression model"),
        (lambda s: s.update(scaling={"train_samples": [100, 200], "width_factors": [1, 2]}), "no hidden widths to scale"),
    ],
)
def test_bad_values_are_refused_naming_the_field(edit, words):
    with pytest.raises(ConfigError) as info:
        _validate(edit)
    assert words in str(info.value)
