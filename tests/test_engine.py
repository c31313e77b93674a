"""The batched engine trains K runs together and gives what K calls of the reference trainer give, for every
model kind (contrastive runs each drawing their own views).

Bitwise on CPU for one run (K = 1: no vmap, the reference's own arithmetic). For K > 1 the forward
and backward run under vmap, whose batching rules use batched matmul / grouped-convolution kernels
and decomposed loss gradients that sum in another order: a run then agrees with its reference run to
float32 rounding, checked here with rtol 1e-5, atol 1e-6 over tens of steps.
"""

import math
import signal

import numpy as np
import pytest
import torch

from batchlab.config import Study
from batchlab.data import make_dataset
from batchlab.training.engine import _Training, train_runs
from batchlab.training.resume import ResumePoint, StopFlag, TrainingInterrupted
from batchlab.training.reference import train_run

CPU = torch.device("cpu")
TIMING = {"wall_time_s", "samples_per_s", "peak_mem_mb", "resumed_at_step"}
ENGINE_COLUMNS = {"engine", "runs_together"}
RTOL, ATOL = 1e-5, 1e-6
EHR = {"name": "synthetic_ehr", "n_samples": 120, "n_features": 24, "n_factors": 3}
MODELS = {
    "dense_ae": (EHR, {"kind": "dense_ae", "hidden": [16], "latent": 4}),
    "mlp": ({"name": "digits"}, {"kind": "mlp", "hidden": [16], "latent": 8}),
    "conv_ae": ({"name": "phantom_mri", "n_samples": 60, "size": 16}, {"kind": "conv_ae", "channels": [4, 8], "latent": 4}),
    "dense_ae_mse_sigmoid": (EHR, {"kind": "dense_ae", "hidden": [16], "latent": 4, "loss": "mse", "output": "sigmoid"}),
    "cnn": ({"name": "mnist1d", "n_samples": 200}, {"kind": "cnn", "channels": [4, 8], "latent": 8}),
    "contrastive": (
        {"name": "mnist1d", "n_samples": 200},
        {"kind": "contrastive", "channels": [4, 8], "latent": 8, "projection": 4},
    ),
}
FRACTIONS = (0.0, 0.5, 1.0)


def _study(model: str = "dense_ae", amount: float = 2, optim: dict | None = None, training: dict | None = None) -> Study:
    data, spec = MODELS[model]
    return Study.model_validate(
        {
            "data": data, "model": spec, "optim": optim or {}, "training": training or {},
            "budget": {"unit": "samples", "amount": amount * 100}, "batch_sizes": [4], "seeds": [0, 1],
            "curve_points": 10, "sharpness": {"samples": 16, "iters": 5},
        }
    )


_DATA: dict = {}


def _data(study: Study):
    key = study.data.model_dump_json()
    if key not in _DATA:
        _DATA[key] = make_dataset(study.data)
    return _DATA[key]


def _reference(study, runs, batch_size=4):
    data = _data(study)
    return [train_run(study, data, batch_size, seed, CPU, FRACTIONS, base_lr=lr) for lr, seed in runs]


def _engine(study, runs, batch_size=4, **kw):
    return train_runs(study, _data(study), batch_size, runs, CPU, {seed: FRACTIONS for _, seed in runs}, **kw)


def _values(record: dict, skip=TIMING | ENGINE_COLUMNS) -> dict:
    return {k: v for k, v in record.items() if k not in skip}


def _assert_bitwise(a, b, skip=TIMING | ENGINE_COLUMNS):
    ra, rb = _values(a.record, skip), _values(b.record, skip)
    assert ra.keys() == rb.keys()
    for k in ra:
        assert ra[k] == rb[k] or (isinstance(ra[k], float) and math.isnan(ra[k]) and math.isnan(rb[k])), k
    assert _same_curves(a.curve, b.curve)
    assert np.array_equal(a.embeddings, b.embeddings, equal_nan=True)
    assert a.checkpoints.keys() == b.checkpoints.keys()
    for f in a.checkpoints:
        assert all(torch.equal(a.checkpoints[f][k], b.checkpoints[f][k]) for k in a.checkpoints[f])


def _same_curves(a, b) -> bool:
    return [[(k, v) for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))] for r in a] == [
        [(k, v) for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))] for r in b
    ]


def _assert_close(a, b, rtol=RTOL, atol=ATOL):
    """Same record (numbers to tolerance), curve steps and checkpoint keys; losses and weights to tolerance."""
    ra, rb = _values(a.record), _values(b.record)
    assert ra.keys() == rb.keys()
    for k in ra:
        if isinstance(ra[k], float):
            assert math.isclose(ra[k], rb[k], rel_tol=1e-4, abs_tol=ATOL) or (math.isnan(ra[k]) and math.isnan(rb[k])), k
        else:
            assert ra[k] == rb[k], k
    assert [r["step"] for r in a.curve] == [r["step"] for r in b.curve]
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose([r[key] for r in a.curve], [r[key] for r in b.curve], rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.embeddings, b.embeddings, rtol=rtol, atol=atol)
    assert a.checkpoints.keys() == b.checkpoints.keys()
    for f in a.checkpoints:
        for k in a.checkpoints[f]:
            torch.testing.assert_close(a.checkpoints[f][k], b.checkpoints[f][k], rtol=rtol, atol=atol)


@pytest.mark.parametrize("model", ["dense_ae", "mlp", "cnn", "contrastive"])
def test_one_run_is_bitwise_the_reference(model):
    study = _study(model)
    ref, got = _reference(study, [(1e-3, 0)]), _engine(study, [(1e-3, 0)])
    _assert_bitwise(ref[0], got[0])
    assert got[0].record["engine"] == "batched"
    assert got[0].record["cuda_graph"] is None and ref[0].record["cuda_graph"] is None  # no GPU: not applicable


@pytest.mark.parametrize("model", ["dense_ae", "dense_ae_mse_sigmoid", "conv_ae", "mlp", "cnn", "contrastive"])
def test_runs_together_match_their_reference_runs(model):
    study = _study(model, optim={"weight_decay": 1e-3, "warmup": 0.2})
    runs = [(1e-3, 0), (1e-3, 1), (3e-3, 0)]
    got = _engine(study, runs)
    # the contrastive loss divides cosine similarities by its temperature (0.2) before a softmax, which
    # magnifies the batched kernels' float32 rounding tenfold over the run's steps
    tolerance = {"rtol": 10 * RTOL, "atol": 10 * ATOL} if model == "contrastive" else {}
    for ref, run in zip(_reference(study, runs), got):
        _assert_close(ref, run, **tolerance)
        assert run.record["runs_together"] == 3 and run.record["engine"] == "batched"
    assert not np.allclose(got[0].embeddings, got[2].embeddings), "runs with other learning rates must differ"


def test_a_diverging_run_is_frozen_and_the_others_go_on():
    study = _study(optim={"name": "sgd", "lr_rule": "tuned", "lr_grid": [0.01, 0.1, 1e4]})
    runs = [(0.01, 0), (1e4, 0), (0.1, 1)]
    ref, got = _reference(study, runs), _engine(study, runs)
    assert got[1].record["diverged"] and got[1].record["diverged_step"] == ref[1].record["diverged_step"] > 0
    assert math.isnan(got[1].record["val_loss"]) and got[1].curve[-1]["step"] == got[1].record["diverged_step"]
    for i in (0, 2):
        assert not got[i].record["diverged"] and math.isfinite(got[i].record["val_loss"])
        _assert_close(ref[i], got[i])


def test_accumulated_gradients_equal_full_batch_gradients():
    """Micro-batches of 3, 3, 2 samples, weighted by their share: the full batch's mean gradient (float32 sums)."""
    study = _study(training={"micro_batch_size": 3})
    training = _Training(study, _data(study), 8, [(1e-3, 0), (1e-3, 1)], CPU, {})
    step = training.step_fn
    x = training.x_train[:16].view(2, 8, -1)
    loss_acc, grads_acc = step._gradients(x, x)
    assert len(step.parts) == 3
    step.set_micro_batch(None)
    loss, grads = step._gradients(x, x)
    torch.testing.assert_close(loss_acc, loss, rtol=1e-6, atol=1e-7)
    for n in grads:
        torch.testing.assert_close(grads_acc[n], grads[n], rtol=1e-5, atol=1e-7)


def test_accumulated_run_matches_the_direct_run_and_the_reference():
    direct, micro = _study(), _study(training={"micro_batch_size": 3})
    got = _engine(micro, [(1e-3, 0)])[0]
    assert (got.record["micro_batch_size"], got.record["accumulation_steps"]) == (3, 2)
    _assert_bitwise(_reference(micro, [(1e-3, 0)])[0], got)  # the reference accumulates the same way
    plain = _engine(direct, [(1e-3, 0)])[0]
    np.testing.assert_allclose(
        [r["val_loss"] for r in got.curve], [r["val_loss"] for r in plain.curve], rtol=1e-4, atol=1e-6
    )
    skip = TIMING | ENGINE_COLUMNS | {"micro_batch_size", "accumulation_steps"}
    assert _values(plain.record, skip).keys() == _values(got.record, skip).keys()


def test_bf16_trains_to_a_finite_loss():
    study = _study(training={"precision": "bf16"})
    for result in _engine(study, [(1e-3, 0), (1e-3, 1)]):
        assert result.record["precision"] == "bf16" and not result.record["diverged"]
        assert all(math.isfinite(r["train_loss"]) for r in result.curve) and math.isfinite(result.record["val_loss"])


def test_engine_is_deterministic():
    study = _study("mlp", optim={"name": "sgd"})
    runs = [(1e-2, 0), (1e-2, 1), (1e3, 0)]
    for a, b in zip(_engine(study, runs), _engine(study, runs)):
        _assert_bitwise(a, b, skip=TIMING)


@pytest.mark.parametrize("model", ["dense_ae", "contrastive"])
def test_stopped_engine_resumes_bitwise(model, tmp_path):
    """Stopped at step 21 and resumed: the uninterrupted runs' bits (contrastive runs go on drawing the
    views they would have drawn)."""
    study = _study(model, optim={"name": "sgd", "lr_rule": "tuned", "lr_grid": [0.01, 1e4]})
    runs = [(0.01, 0), (1e4, 0), (0.01, 1)]
    uninterrupted = _engine(study, runs)
    point = ResumePoint(tmp_path / "runs.pt", "cell", every_s=3600, stop=StopFlag())

    def sigterm_at_step_20(step):
        if step == 20:
            point.stop._handle(signal.SIGTERM, None)

    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM at step 21/"):
        _engine(study, runs, progress=sigterm_at_step_20, resume=point)
    assert point.load()["step"] == 21
    resumed = _engine(study, runs, resume=ResumePoint(point.path, point.identity, every_s=3600))
    for a, b in zip(uninterrupted, resumed):
        assert b.record["resumed_at_step"] == 21
        _assert_bitwise(a, b, skip=TIMING)


def test_the_captured_step_body_equals_the_eager_step(monkeypatch):
    """The step a CUDA graph captures (device-tensor step and lr, Adam's bias corrections from the table,
    in-place commit) run eagerly on CPU gives the eager step's bits, here with warmup and weight decay."""
    study = _study(optim={"weight_decay": 1e-3, "warmup": 0.3})
    eager = _engine(study, [(1e-3, 0)])[0]
    original = _Training.__init__

    def graph_body(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.step_fn.graph_body = True

    monkeypatch.setattr(_Training, "__init__", graph_body)
    _assert_bitwise(eager, _engine(study, [(1e-3, 0)])[0])


@pytest.mark.parametrize("model", ["dense_ae", "contrastive"])
def test_auto_engine_batches_on_a_gpu_only(model):
    from batchlab.training.engine import use_batched

    study = _study(model)
    auto = study.model_copy(update={"training": study.training.model_copy(update={"engine": "auto"})})
    forced = study.model_copy(update={"training": study.training.model_copy(update={"engine": "batched"})})
    reference = study.model_copy(update={"training": study.training.model_copy(update={"engine": "reference"})})
    assert not use_batched(auto, torch.device("cpu")) and use_batched(auto, torch.device("cuda"))
    assert use_batched(forced, torch.device("cpu")) and not use_batched(reference, torch.device("cuda"))


def test_contrastive_runs_batched_with_micro_batches_are_bitwise_the_reference():
    """One run: micro-batches of 3 draw their views part by part, as the reference does."""
    study = _study("contrastive", training={"micro_batch_size": 3})
    got = _engine(study, [(1e-3, 1)])[0]
    assert (got.record["micro_batch_size"], got.record["accumulation_steps"]) == (3, 2)
    _assert_bitwise(_reference(study, [(1e-3, 1)])[0], got)


def test_contrastive_validation_losses_of_all_runs_at_once_equal_each_runs_own():
    """At a logged step every contrastive run is evaluated at once, each on its own fresh stream of views and in
    the reference's chunks (a chunk holds the negatives): each value is the reference's mean_loss for that run."""
    from batchlab.training.run import mean_loss

    study = _study("contrastive")
    runs = [(1e-3, 0), (1e-3, 1), (3e-3, 2)]
    training = _Training(study, _data(study), 4, runs, CPU, {})
    for i in range(1, 4):
        training.step_fn.step(i, training.x_train, training.y_train, training.stream, False)
    batch = 16  # chunks of 16, 16 and 8 of the 40 validation samples
    together = training.step_fn.mean_losses(training.x_va, training.y_va, batch)
    alone = [mean_loss(training.load_run(k), training.eval_loss(k), training.x_va, training.y_va, batch) for k in range(3)]
    assert len(set(alone)) == 3
    torch.testing.assert_close(together, torch.tensor(alone, dtype=torch.float64), rtol=1e-6, atol=1e-8)
    again = training.step_fn.mean_losses(training.x_va, training.y_va, batch)
    assert torch.equal(together, again), "each evaluation starts its runs' streams afresh"


@pytest.mark.parametrize("model", ["dense_ae", "contrastive"])
def test_out_of_memory_halves_the_micro_batch_except_for_contrastive_runs(model, monkeypatch):
    """A step out of memory is taken again in micro-batches of half the size; a contrastive run's negatives come
    from its micro-batch, so halving would change its task: the error reaches the job instead."""
    from batchlab.training.engine import _Step

    training = _Training(_study(model), _data(_study(model)), 4, [(1e-3, 0), (1e-3, 1)], CPU, {})
    step, original, calls = training.step_fn, _Step._dispatch, []

    def out_of_memory_once(self, *args):
        calls.append(self.parts[0][1] - self.parts[0][0])
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return original(self, *args)

    monkeypatch.setattr(_Step, "_dispatch", out_of_memory_once)
    if model == "contrastive":
        with pytest.raises(torch.OutOfMemoryError):
            step.step(1, training.x_train, training.y_train, training.stream, False)
        assert calls == [4]
    else:
        step.step(1, training.x_train, training.y_train, training.stream, False)
        assert calls == [4, 2] and len(step.parts) == 2
