"""Train-to-target: each run stops at the first logged step where its validation loss reaches a target
known before training, in both trainers, and keeps its weights there (with the real step) for B_simple."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from batchlab.config import ConfigError, Study, validate_config
from batchlab.data import make_dataset
from batchlab.training.engine import train_runs
from batchlab.training.host_sync import NoHostSync
from batchlab.measure.noise import measure_cell
from batchlab.training.run import StopAt
from batchlab.analysis.targets import pilot_loss, stop_target
from batchlab.training.reference import train_run

CPU = torch.device("cpu")
TIMING = {"wall_time_s", "samples_per_s", "peak_mem_mb", "resumed_at_step", "engine", "runs_together"}
BASE = {
    "data": {"name": "synthetic_ehr", "n_samples": 120, "n_features": 24, "n_factors": 3},
    "model": {"kind": "dense_ae", "hidden": [16], "latent": 4},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [2, 8],
    "seeds": [0, 1],
    "sharpness": {"samples": 0},
}


def _study(**to_target) -> Study:
    block = {"kind": "value", "value": 0.5, "cap": {"unit": "epochs", "amount": 4}, "checks": 30, **to_target}
    return Study.model_validate({**BASE, "to_target": block})


@pytest.fixture(scope="module")
def view_and_data():
    study = _study()
    return study.to_target_view(), make_dataset(study.data)


def _target_between(view, data, batch_size=2):
    """A target this run crosses half-way through its cap: the mean of its first and last logged validation loss."""
    full = train_run(view, data, batch_size, 0, CPU)
    losses = [r["val_loss"] for r in full.curve]
    return (losses[0] + losses[-1]) / 2, full


def test_a_run_stops_at_the_first_logged_step_at_or_below_the_target(view_and_data):
    view, data = view_and_data
    target, full = _target_between(view, data)
    got = train_run(view, data, 2, 0, CPU, (1.0,), stop_at=StopAt(target))
    first = next(r for r in full.curve if r["val_loss"] <= target)
    assert got.record["steps"] == first["step"] < full.record["steps"]
    assert got.record["reached_target"] and got.record["target"] == target
    assert got.curve == [r for r in full.curve if r["step"] <= first["step"]]  # the same run up to the stop
    assert got.checkpoint_steps == {1.0: first["step"]}
    assert got.record["samples_seen"] == first["step"] * 2


def test_a_run_that_never_reaches_the_target_trains_to_the_cap(view_and_data):
    view, data = view_and_data
    got = train_run(view, data, 8, 0, CPU, (1.0,), stop_at=StopAt(1e-9))
    assert not got.record["reached_target"]
    assert got.record["steps"] == view.budget.steps(8, len(data.indices("train")))
    assert got.checkpoint_steps == {1.0: got.record["steps"]}


def test_the_engine_stops_each_run_where_the_reference_does(view_and_data):
    """One run: bit for bit the reference. Several: each frozen at its own stop while the others go on."""
    view, data = view_and_data
    target, _ = _target_between(view, data)
    runs = [(1e-3, 0), (1e-3, 1), (3e-3, 0)]
    refs = [train_run(view, data, 2, seed, CPU, (1.0,), base_lr=lr, stop_at=StopAt(target)) for lr, seed in runs]
    one = train_runs(view, data, 2, runs[:1], CPU, {0: (1.0,)}, stop_at=StopAt(target))[0]
    assert {k: v for k, v in one.record.items() if k not in TIMING} == {
        k: v for k, v in refs[0].record.items() if k not in TIMING
    }
    assert one.curve == refs[0].curve and one.checkpoint_steps == refs[0].checkpoint_steps
    together = train_runs(view, data, 2, runs, CPU, {0: (1.0,), 1: (1.0,)}, stop_at=StopAt(target))
    assert len({r.record["steps"] for r in refs}) > 1, "the runs should stop at different steps"
    for ref, got in zip(refs, together):
        assert got.record["steps"] == ref.record["steps"] and got.record["reached_target"] == ref.record["reached_target"]
        assert [r["step"] for r in got.curve] == [r["step"] for r in ref.curve]
        np.testing.assert_allclose(got.record["val_loss"], ref.record["val_loss"], rtol=1e-5)
        assert got.checkpoint_steps == ref.checkpoint_steps


def test_the_stopping_step_body_does_not_sync_with_the_host(view_and_data, monkeypatch):
    """The stop freezes runs through the active mask the diverged runs use: the step itself reads nothing back."""
    from batchlab.training import engine

    view, data = view_and_data
    target, _ = _target_between(view, data)
    steps_seen = []
    original = engine._Step._device_step

    def guarded(self, *args, **kw):
        with NoHostSync():
            steps_seen.append(args[3])  # masked
            return original(self, *args, **kw)

    monkeypatch.setattr(engine._Step, "_device_step", guarded)
    train_runs(view, data, 2, [(1e-3, 0), (3e-3, 0)], CPU, {0: (1.0,)}, stop_at=StopAt(target))
    assert False in steps_seen and True in steps_seen  # unmasked steps, then masked ones after the first stop


def test_gradient_noise_is_measured_at_the_step_where_the_run_stopped(view_and_data):
    view, data = view_and_data
    target, _ = _target_between(view, data)
    got = train_run(view, data, 2, 0, CPU, (1.0,), stop_at=StopAt(target))
    checkpoints = {"seed0": {"1": got.checkpoints[1.0]}, "steps": {"seed0": {"1": got.checkpoint_steps[1.0]}}}
    spec = view.gradients.model_copy(update={"seeds": 1, "eval_samples": 32})
    stats, spread = measure_cell(view, spec, data, 2, checkpoints, CPU, spread=False)
    assert stats["step"].tolist() == [got.record["steps"]] and spread.empty
    assert np.isfinite(stats["b_simple"]).all()


def test_stop_targets_have_their_known_values():
    assert stop_target("value", 0.3) == 0.3
    assert stop_target("baseline_ratio", 0.9, baseline=0.5) == pytest.approx(0.45)
    assert stop_target("pilot_fraction", 0.5, baseline=0.5, pilot=0.3) == pytest.approx(0.4)
    assert stop_target("pilot_fraction", 1.0, baseline=0.5, pilot=0.3) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="not below the data's baseline"):
        stop_target("pilot_fraction", 0.5, baseline=0.5, pilot=0.6)
    with pytest.raises(ValueError, match="needs the data's baseline"):
        stop_target("baseline_ratio", 0.9)


def test_the_pilot_is_the_smallest_batch_sizes_mean_final_loss_over_finite_runs():
    runs = pd.DataFrame({"batch_size": [4, 4, 4, 16], "val_loss": [0.2, 0.4, math.nan, 0.1]})
    assert pilot_loss(runs) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"kind": "pilot_fraction", "value": 1.5}, "pilot_fraction target must be in"),
        ({"cap": {"unit": "steps", "amount": 100}}, "the cap must be in epochs or samples"),
        ({"seeds": [0]}, "at least 2"),
        ({"batch_sizes": [4, 4]}, "repeat"),
        ({"batch_sizes": [4096]}, "exceed the training set"),
        ({"gradient_seeds": 3, "seeds": [0, 1]}, "gradient_seeds"),
        ({"noise_samples": 8}, "noise_samples"),
    ],
)
def test_bad_to_target_blocks_name_the_study_and_field(block, message):
    raw = {"studies": {"s": {**BASE, "to_target": {"cap": {"unit": "epochs", "amount": 3}, **block}}}}
    with pytest.raises(ConfigError) as err:
        validate_config(raw, source="c.yaml")
    assert "c.yaml" in str(err.value) and "study 's'" in str(err.value) and message in str(err.value)


def test_the_to_target_view_is_the_cap_its_cells_and_weights_where_runs_stop():
    study = _study(batch_sizes=[1, 4], seeds=[3, 5], gradient_seeds=2)
    view = study.to_target_view()
    assert view.budget.unit == "epochs" and view.budget.amount == 4
    assert view.batch_sizes == [1, 4] and view.seeds == [3, 5] and view.curve_points == 30
    assert view.gradients.checkpoints == [1.0] and view.gradients.seeds == 2 and view.sharpness.samples == 0
    assert view.to_target is None and view.claims == []
    assert _study().to_target_view().batch_sizes == BASE["batch_sizes"]
    n_train = study.data.n_train()  # B_simple at the target: noise_samples, at most the training split
    assert n_train < 1024 and view.gradients.eval_samples == n_train and view.gradients.eval_size(n_train) == n_train
    assert _study(noise_samples=40).to_target_view().gradients.eval_samples == 40


@pytest.mark.parametrize("trainer", ["reference", "batched"])
def test_a_stopped_to_target_cell_resumes_to_the_same_stops(view_and_data, tmp_path, trainer):
    """Killed after one run reached the target and before the other did: the resumed cell stops them where
    an uninterrupted one does, with the same checkpoints."""
    import signal

    from batchlab.training.resume import ResumePoint, StopFlag, TrainingInterrupted

    view, data = view_and_data
    target, _ = _target_between(view, data)
    runs = [(1e-3, 0), (3e-3, 0)]
    fractions = {0: (1.0,)}

    def train(resume=None, progress=None):
        if trainer == "batched":
            return train_runs(view, data, 2, runs, CPU, fractions, progress, resume, StopAt(target))
        return [train_run(view, data, 2, 0, CPU, (1.0,), progress, resume, lr, StopAt(target)) for lr, _ in runs[:1]]

    whole = train()
    stops = sorted(r.record["steps"] for r in whole)
    stop_step = stops[0] + 1 if trainer == "batched" else stops[0] // 2  # between the stops; before the only one
    point = ResumePoint(tmp_path / "cell.pt", "cell", every_s=3600, stop=StopFlag())

    def sigterm(step):
        if step == stop_step:
            point.stop._handle(signal.SIGTERM, None)

    assert stop_step < stops[-1], "the runs should stop at different steps"
    with pytest.raises(TrainingInterrupted):
        train(point, sigterm)
    resumed = train(ResumePoint(point.path, point.identity, every_s=3600))
    for a, b in zip(whole, resumed):
        assert b.record["resumed_at_step"] > 0
        assert a.record["steps"] == b.record["steps"] and a.record["reached_target"] == b.record["reached_target"]
        assert a.curve == b.curve and a.checkpoint_steps == b.checkpoint_steps
        assert all(torch.equal(a.checkpoints[1.0][k], b.checkpoints[1.0][k]) for k in a.checkpoints[1.0])


def test_a_steps_to_target_that_to_target_would_override_is_an_error():
    raw = {"studies": {"s": {**BASE, "steps_to_target": {"kind": "within_best", "value": 0.2},
                             "to_target": {"cap": {"unit": "epochs", "amount": 3}}}}}
    with pytest.raises(ConfigError, match="steps_to_target.kind, steps_to_target.value would not be used"):
        validate_config(raw, source="c.yaml")


def test_a_study_with_to_target_survives_the_json_the_jobs_receive():
    study = _study()
    assert Study.model_validate_json(study.model_dump_json()) == study


def test_stops_in_the_step_a_cuda_graph_captures_match_the_eager_ones(view_and_data, monkeypatch):
    """With the graph body (device-tensor step, in-place commit; what a CUDA graph replays) the runs stop at
    the same steps with the same weights as with eager steps: the stop is the divergence mask's frozen step."""
    from batchlab.training.engine import _Training

    view, data = view_and_data
    target, _ = _target_between(view, data)
    runs, fractions = [(1e-3, 0), (3e-3, 0)], {0: (1.0,)}
    eager = train_runs(view, data, 2, runs, CPU, fractions, stop_at=StopAt(target))
    original = _Training.__init__

    def graph_body(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.step_fn.graph_body = True

    monkeypatch.setattr(_Training, "__init__", graph_body)
    body = train_runs(view, data, 2, runs, CPU, fractions, stop_at=StopAt(target))
    for a, b in zip(eager, body):
        assert a.record["steps"] == b.record["steps"] and a.curve == b.curve
        assert all(torch.equal(a.checkpoints[1.0][k], b.checkpoints[1.0][k]) for k in a.checkpoints[1.0])


@pytest.mark.parametrize("trainer", ["reference", "batched"])
def test_state_saved_before_checkpoint_steps_existed_still_resumes(view_and_data, tmp_path, trainer):
    """A job killed under an earlier version left state without checkpoint steps or stops: it resumes to the
    same run, its checkpoint steps falling back to their fraction of the budget."""
    import signal

    from batchlab.training.resume import ResumePoint, StopFlag, TrainingInterrupted

    view, data = view_and_data

    def train(resume=None, progress=None):
        if trainer == "batched":
            return train_runs(view, data, 8, [(1e-3, 0)], CPU, {0: (1.0,)}, progress, resume)[0]
        return train_run(view, data, 8, 0, CPU, (1.0,), progress, resume)

    whole = train()
    point = ResumePoint(tmp_path / "run.pt", "cell", every_s=3600, stop=StopFlag())

    def sigterm(step):
        if step == whole.record["steps"] // 2:
            point.stop._handle(signal.SIGTERM, None)

    with pytest.raises(TrainingInterrupted):
        train(point, sigterm)
    old = {k: v for k, v in point.load().items() if k not in ("checkpoint_steps", "reached")}
    point.save(old)
    resumed = train(ResumePoint(point.path, point.identity, every_s=3600))
    assert resumed.curve == whole.curve and resumed.record["val_loss"] == whole.record["val_loss"]
    assert resumed.checkpoint_steps == whole.checkpoint_steps
