"""What a CUDA graph captures, checked on CPU: no host sync in any step variant, the fused update
against torch.optim, and a failed capture recorded (or fatal under `require`), never silent."""

import contextlib
import math

import pytest
import torch

from batchlab.training import stacked_optim
from batchlab.config import Optim, Study
from batchlab.data import make_dataset
from batchlab.training.engine import CudaGraphRequired, _Training, train_runs
from batchlab.training.host_sync import HostSyncError, NoHostSync
from batchlab.training.reference import train_run

CPU = torch.device("cpu")
EHR = {"name": "synthetic_ehr", "n_samples": 120, "n_features": 24, "n_factors": 3}
MODELS = {
    "dense_ae": (EHR, {"kind": "dense_ae", "hidden": [16], "latent": 4}),
    "conv_ae": ({"name": "phantom_mri", "n_samples": 60, "size": 16}, {"kind": "conv_ae", "channels": [4, 8], "latent": 4}),
    "mlp": ({"name": "digits"}, {"kind": "mlp", "hidden": [16], "latent": 8}),
    "cnn": ({"name": "mnist1d", "n_samples": 200}, {"kind": "cnn", "channels": [4, 8], "latent": 8}),
}
OPTIMS = {"adam": {"name": "adam", "weight_decay": 1e-3, "warmup": 0.5}, "sgd": {"name": "sgd", "momentum": 0.9}}
_DATA: dict = {}


def _study(model: str, optim: str = "adam", training: dict | None = None) -> Study:
    data, spec = MODELS[model]
    return Study.model_validate(
        {
            "data": data, "model": spec, "optim": OPTIMS[optim], "training": training or {},
            "budget": {"unit": "steps", "amount": 8}, "batch_sizes": [4], "seeds": [0, 1], "curve_points": 3,
            "sharpness": {"samples": 0},
        }
    )


def _data(study: Study):
    key = study.data.model_dump_json()
    if key not in _DATA:
        _DATA[key] = make_dataset(study.data)
    return _DATA[key]


@pytest.mark.parametrize(
    "code",
    ["t[torch.tensor(2)]", "t.sum().item()", "bool(t[1] > 0)", "t[t > 1]", "torch.nonzero(t)", "float(t.max())"],
)
def test_the_guard_catches_each_kind_of_host_sync(code):
    t = torch.arange(5.0)
    with pytest.raises(HostSyncError), NoHostSync():
        eval(code)


def test_the_guard_lets_device_only_indexing_through():
    t = torch.arange(5.0)
    with NoHostSync():
        t.index_select(0, torch.tensor([1, 3]))
        torch.where(t > 1, t, t * 0)
        t[torch.tensor([0, 4])]


PATHS = {
    "graph body": dict(k=2, graph_body=True, fused=False),  # the unfused step a graph captures
    "fused": dict(k=2, graph_body=True, fused=True),  # the fused in-place step a graph captures on a GPU
    "one run": dict(k=1, graph_body=False, fused=False),  # one run, eager: the reference's arithmetic
}
VARIANTS = {"plain": {}, "masked": {}, "micro-batched": {"micro_batch_size": 3}, "bf16": {"precision": "bf16"}}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("optim", OPTIMS)
@pytest.mark.parametrize("model", MODELS)
def test_no_step_reads_a_device_value_back(model, optim, variant, path):
    """Every model kind, optimizer, step variant and path runs its steps under the guard; a sync fails here
    the day it is added, before a GPU ever sees it."""
    spec = PATHS[path]
    study = _study(model, optim, VARIANTS[variant])
    runs = [(1e-3, 0), (1e-3, 1)][: spec["k"]]
    training = _Training(study, _data(study), 4, runs, CPU, {})
    step = training.step_fn
    step.graph_body, step.fused = spec["graph_body"], spec["fused"]
    masked = variant == "masked"
    if masked:
        step.set_active([None] * (len(runs) - 1) + [1])
    before = {n: p.clone() for n, p in step.params.items()}
    for i in range(1, 5):
        with NoHostSync():
            step.step(i, training.x_train, training.y_train, training.stream, masked)
    moved = [not torch.equal(step.params[n][0], before[n][0]) for n in before]
    if masked and len(runs) > 1:
        assert all(torch.equal(step.params[n][-1], before[n][-1]) for n in before), "a frozen run must not move"
    if not (masked and len(runs) == 1):
        assert any(moved), "the first run must train"


def _stacked(shapes, k, seed):
    g = torch.Generator().manual_seed(seed)
    return {f"p{i}": torch.randn(k, *s, generator=g, dtype=torch.float32) for i, s in enumerate(shapes)}


@pytest.mark.parametrize(
    "optim", [{"name": "adam"}, {"name": "adam", "weight_decay": 0.01}, {"name": "sgd", "momentum": 0.9},
              {"name": "sgd", "momentum": 0.0, "weight_decay": 0.01}],
    ids=["adam", "adam-wd", "sgd-momentum", "sgd-wd"],
)
def test_fused_update_equals_torch_optim_per_run(optim):
    """K = 4 runs in two learning-rate groups, 6 steps with fresh gradients: each run as torch.optim moves it."""
    spec = Optim.model_validate({**optim, "lr": 1e-2})
    shapes, lrs = [(3, 5), (5,), (2, 3, 3)], [1e-2, 1e-2, 3e-3, 3e-3]
    params = _stacked(shapes, 4, 0)
    state = stacked_optim.init_state(spec, params)
    refs = []
    for k, lr in enumerate(lrs):
        ps = [torch.nn.Parameter(params[n][k].clone()) for n in params]
        cls = torch.optim.Adam if spec.name == "adam" else torch.optim.SGD
        kw = {"momentum": spec.momentum} if spec.name == "sgd" else {}
        refs.append((ps, cls(ps, lr=lr, weight_decay=spec.weight_decay, foreach=False, **kw)))
    groups = stacked_optim.equal_runs(lrs)
    assert groups == [(0, 2), (2, 4)]
    for step in range(1, 7):
        grads = _stacked(shapes, 4, 100 + step)
        transposed = {n: g.transpose(-1, -2).contiguous().transpose(-1, -2) for n, g in grads.items()}  # as vmap gives
        stacked_optim.fused_update_(
            spec, params, transposed, state, torch.tensor(step),
            torch.tensor(lrs, dtype=torch.float64), groups,
        )
        for k, (ps, opt) in enumerate(refs):
            for p, n in zip(ps, grads):
                p.grad = grads[n][k].clone()
            opt.step()
    for k, (ps, _) in enumerate(refs):
        for p, n in zip(ps, params):
            torch.testing.assert_close(params[n][k], p.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optim", OPTIMS)
def test_fused_engine_runs_match_their_reference_runs(optim, monkeypatch):
    """The fused path end to end: K runs, two learning rates, one of them diverging (frozen by the masked,
    unfused variant) against the reference trainer's runs."""
    study = _study("dense_ae", optim).model_copy(update={"budget": _study("dense_ae").budget.model_copy(update={"amount": 30})})
    runs = [(1e-3, 0), (1e-3, 1), (1e4, 0)]
    original = _Training.__init__

    adopted = []

    def fused(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.step_fn.fused = True
        adopt = self.step_fn._adopt_layout

        def record(grads):
            adopt(grads)
            adopted.append(all(self.step_fn.params[n].stride() == g.stride() for n, g in grads.items()))
        self.step_fn._adopt_layout = record

    data = _data(study)
    refs = [train_run(study, data, 4, seed, CPU, base_lr=lr) for lr, seed in runs]
    monkeypatch.setattr(_Training, "__init__", fused)
    got = train_runs(study, data, 4, runs, CPU, {})
    assert got[2].record["diverged"] == refs[2].record["diverged"]
    assert adopted and all(adopted), "the fused path stores the weights in their gradients' layout"
    for ref, run in zip(refs[:2], got[:2]):
        for key in ("train_loss", "val_loss", "distance_from_init"):
            assert math.isclose(ref.record[key], run.record[key], rel_tol=1e-4), key
        torch.testing.assert_close(torch.as_tensor(run.embeddings), torch.as_tensor(ref.embeddings), rtol=1e-4, atol=1e-5)


@pytest.fixture
def failing_capture(monkeypatch):
    """torch.cuda.graph raising as a capture invalidated by a host sync does."""
    class Graph:
        pass

    @contextlib.contextmanager
    def capture(graph):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
        yield

    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", capture)


def _step_wanting_graphs(study: Study):
    """The step of two runs of the study, set to capture as on CUDA (the capture itself is faked or refused)."""
    step = _Training(study, _data(study), 4, [(1e-3, 0), (1e-3, 1)], CPU, {}).step_fn
    step.graphs_wanted = True
    return step


def test_a_failed_capture_is_recorded_not_silent(failing_capture, caplog):
    study = _study("dense_ae")
    step = _step_wanting_graphs(study)
    assert not step._graph(False, None, None, None)
    assert not step.graphs_wanted and "operation not permitted when stream is capturing" in step.graph_fallback
    assert "training continues with eager steps" in caplog.text


def test_a_failed_capture_fails_the_job_when_graphs_are_required(failing_capture):
    study = _study("dense_ae", training={"cuda_graphs": "require"})
    step = _step_wanting_graphs(study)
    with pytest.raises(CudaGraphRequired, match="require"):
        step._graph(False, None, None, None)


def test_cuda_graphs_setting_reads_its_old_boolean_form():
    assert _study("dense_ae", training={"cuda_graphs": True}).training.cuda_graphs == "auto"
    assert _study("dense_ae", training={"cuda_graphs": False}).training.cuda_graphs == "off"
    assert _study("dense_ae", training={"cuda_graphs": "require"}).cell_view(4).training.cuda_graphs == "auto"


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("model", MODELS)
def test_logged_validation_losses_of_all_runs_at_once_equal_each_runs_own(model, chunked, monkeypatch):
    """At a logged step the engine evaluates every run in one vmapped pass (chunked when the K runs'
    activations would be large): each run's value is what the reference's mean_loss gives that run
    alone, and the pass reads nothing back to the host."""
    from batchlab.training import engine
    from batchlab.training.run import mean_loss

    study = _study(model)
    runs = [(1e-3, 0), (1e-3, 1), (3e-3, 2)]
    training = _Training(study, _data(study), 4, runs, CPU, {})
    step = training.step_fn
    for i in range(1, 4):
        step.step(i, training.x_train, training.y_train, training.stream, False)
    if chunked:
        monkeypatch.setattr(engine, "EVAL_ELEMENTS", 3 * math.prod(training.x_va.shape[1:]) * 7)  # 7 samples a chunk
    with NoHostSync():
        together = step.mean_losses(training.x_va, training.y_va, study.eval_batch_size)
    alone = [mean_loss(training.load_run(k), training.loss_fn, training.x_va, training.y_va, study.eval_batch_size)
             for k in range(len(runs))]
    assert together.dtype == torch.float64 and together.shape == (3,)
    assert len(set(alone)) == 3, "the runs must differ for the check to mean anything"
    torch.testing.assert_close(together, torch.tensor(alone, dtype=torch.float64), rtol=1e-6, atol=1e-8)


def test_contrastive_steps_are_not_captured_and_say_why(monkeypatch, caplog):
    """A graph would replay the views drawn at its capture: contrastive runs train eagerly, recorded and logged."""
    contrastive = ({"name": "mnist1d", "n_samples": 200}, {"kind": "contrastive", "channels": [4, 8], "latent": 8, "projection": 4})
    monkeypatch.setitem(MODELS, "contrastive", contrastive)
    study = _study("contrastive")
    step = _step_wanting_graphs(study)
    assert not step._graph(False, None, None, None)
    assert not step.graphs_wanted and "augmentations on the host" in step.graph_fallback
    assert "training continues with eager steps" in caplog.text
