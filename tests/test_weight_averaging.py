"""Steps to target read from an exponential moving average of the weights (Zhang et al. 2025): the average's
recursion against its closed form, a trained run's average against one rebuilt from the same run's weights at
every step, the engine against the reference, a resumed run against an uninterrupted one, and the config's range."""

import math
import signal

import numpy as np
import pytest
import torch

from batchlab.config import ConfigError, Study, validate_config
from batchlab.data import make_dataset
from batchlab.training import averaging
from batchlab.training.engine import train_runs
from batchlab.training.reference import train_run
from batchlab.training.resume import ResumePoint, StopFlag, TrainingInterrupted
from batchlab.training.run import StopAt
from test_to_target import BASE, CPU, TIMING  # the train-to-target tests' study and record filter


HALF_LIFE = 0.2


def _study(**to_target) -> Study:
    block = {"kind": "value", "value": 0.5, "cap": {"unit": "epochs", "amount": 1}, "checks": 12,
             "weight_averaging": {"half_life": HALF_LIFE}, **to_target}
    return Study.model_validate({**BASE, "to_target": block})


@pytest.fixture(scope="module")
def view_and_data():
    study = _study()
    return study.to_target_view(), make_dataset(study.data)


def _closed_form_weights(steps: int, half_life: float) -> np.ndarray:
    """c_t of average_T = sum_t c_t theta_t (t = 0 the initial weights): theta_t enters with 1 - beta_t and then
    decays by every later beta, beta_t = 2^(-1/(half_life t)); computed as products, not by the recursion."""
    beta = np.array([0.0] + [2.0 ** (-1.0 / (half_life * t)) for t in range(1, steps + 1)])
    c = np.empty(steps + 1)
    for t in range(steps + 1):
        later = np.prod(beta[t + 1:]) if t < steps else 1.0
        c[t] = (1.0 if t == 0 else 1.0 - beta[t]) * later
    return c


def test_the_half_life_is_the_stated_share_of_the_steps_so_far():
    for step in (1, 7, 300):
        beta = 1.0 - averaging.new_weight(step, 0.1)
        assert beta ** (0.1 * step) == pytest.approx(0.5, rel=1e-12)


def test_the_recursion_gives_the_closed_form_weighted_sum():
    rng = np.random.default_rng(0)
    thetas = rng.normal(size=(41, 3, 2))
    average = {"w": torch.tensor(thetas[0])}
    for t in range(1, 41):
        averaging.update_(average, {"w": torch.tensor(thetas[t])}, t, 0.3)
    c = _closed_form_weights(40, 0.3)
    assert c.sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(average["w"].numpy(), np.tensordot(c, thetas, axes=1), rtol=1e-12)


def test_frozen_runs_keep_their_average_and_the_others_move_as_when_all_do():
    rng = np.random.default_rng(1)
    start, target = torch.tensor(rng.normal(size=(3, 4))), torch.tensor(rng.normal(size=(3, 4)))
    all_move = {"w": start.clone()}
    averaging.update_(all_move, {"w": target}, 5, 0.1)
    some = {"w": start.clone()}
    averaging.update_(some, {"w": target}, 5, 0.1, active=torch.tensor([True, False, True]))
    assert torch.equal(some["w"][[0, 2]], all_move["w"][[0, 2]]) and torch.equal(some["w"][1], start[1])


def test_a_runs_average_is_the_closed_form_over_its_own_weights_at_every_step(view_and_data):
    """The averaged run trains exactly as the plain run (the average never feeds back), and its kept weights
    are the closed-form average of the plain run's weights at every step, taken as checkpoints."""
    view, data = view_and_data
    steps = view.budget.steps(8, len(data.indices("train")))
    every = tuple(t / steps for t in range(steps + 1))
    plain = train_run(view, data, 8, 0, CPU, every)
    assert sorted(plain.checkpoint_steps.values()) == list(range(steps + 1))
    averaged = train_run(view, data, 8, 0, CPU, (1.0,), stop_at=StopAt(1e-9, average_half_life=HALF_LIFE))
    assert averaged.record["steps"] == steps and averaged.record["average_half_life"] == HALF_LIFE
    c = _closed_form_weights(steps, HALF_LIFE)
    by_step = {s: plain.checkpoints[f] for f, s in plain.checkpoint_steps.items()}
    for name, kept in averaged.checkpoints[1.0].items():
        expected = sum(c[t] * by_step[t][name].double() for t in range(steps + 1))
        torch.testing.assert_close(kept.double(), expected, rtol=2e-5, atol=1e-6)
    # the training loss is the trained weights'; the validation loss is the average's, and differs
    assert [r["train_loss"] for r in averaged.curve] == [r["train_loss"] for r in plain.curve]
    assert averaged.curve[-1]["val_loss"] != plain.curve[-1]["val_loss"]
    assert averaged.record["val_loss"] == pytest.approx(averaged.curve[-1]["val_loss"], rel=1e-6)


def test_the_target_is_checked_on_the_average(view_and_data):
    """A target between the plain and the averaged run's last validation losses is reached by one and not the other."""
    view, data = view_and_data
    plain = train_run(view, data, 8, 0, CPU, (1.0,))
    averaged = train_run(view, data, 8, 0, CPU, (1.0,), stop_at=StopAt(1e-9, average_half_life=HALF_LIFE))
    a, b = plain.curve[-1]["val_loss"], averaged.curve[-1]["val_loss"]
    target = (a + b) / 2
    reached = train_run(view, data, 8, 0, CPU, (1.0,), stop_at=StopAt(target, average_half_life=HALF_LIFE))
    assert reached.record["reached_target"] == (b < a)
    assert train_run(view, data, 8, 0, CPU, (1.0,), stop_at=StopAt(target)).record["reached_target"] == (a < b)


def test_the_engine_averages_as_the_reference_does(view_and_data):
    """One run: bit for bit. Several, frozen at different steps: each to float32 rounding, with the same stops."""
    view, data = view_and_data
    at_end = train_run(view, data, 2, 0, CPU, (1.0,), stop_at=StopAt(1e-9, average_half_life=HALF_LIFE))
    losses = [r["val_loss"] for r in at_end.curve]
    stop = StopAt((losses[0] + losses[-1]) / 2, average_half_life=HALF_LIFE)
    runs = [(1e-3, 0), (1e-3, 1), (3e-3, 0)]
    refs = [train_run(view, data, 2, seed, CPU, (1.0,), base_lr=lr, stop_at=stop) for lr, seed in runs]
    one = train_runs(view, data, 2, runs[:1], CPU, {0: (1.0,)}, stop_at=stop)[0]
    assert {k: v for k, v in one.record.items() if k not in TIMING} == {
        k: v for k, v in refs[0].record.items() if k not in TIMING}
    assert one.curve == refs[0].curve
    assert all(torch.equal(one.checkpoints[1.0][k], refs[0].checkpoints[1.0][k]) for k in one.checkpoints[1.0])
    together = train_runs(view, data, 2, runs, CPU, {0: (1.0,), 1: (1.0,)}, stop_at=stop)
    assert len({r.record["steps"] for r in refs}) > 1, "the runs should stop at different steps"
    for ref, got in zip(refs, together):
        assert got.record["steps"] == ref.record["steps"] and got.record["reached_target"] == ref.record["reached_target"]
        np.testing.assert_allclose(got.record["val_loss"], ref.record["val_loss"], rtol=1e-5)
        for k in ref.checkpoints[1.0]:
            torch.testing.assert_close(got.checkpoints[1.0][k], ref.checkpoints[1.0][k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("trainer", ["reference", "engine"])
def test_a_stopped_averaging_run_resumes_bitwise(view_and_data, tmp_path, trainer):
    view, data = view_and_data
    stop = StopAt(1e-9, average_half_life=HALF_LIFE)
    runs = [(1e-3, 0), (3e-3, 0)]

    def train(**kw):
        if trainer == "engine":
            return train_runs(view, data, 2, runs, CPU, {0: (1.0,)}, stop_at=stop, **kw)
        return [train_run(view, data, 2, 0, CPU, (1.0,), stop_at=stop, **kw)]

    uninterrupted = train()
    point = ResumePoint(tmp_path / "runs.pt", "cell", every_s=3600, stop=StopFlag())

    def sigterm_at_step_10(step):
        if step == 10:
            point.stop._handle(signal.SIGTERM, None)

    with pytest.raises(TrainingInterrupted):
        train(progress=sigterm_at_step_10, resume=point)
    resumed = train(resume=ResumePoint(point.path, point.identity, every_s=3600))
    for a, b in zip(uninterrupted, resumed):
        assert b.record["resumed_at_step"] == 11
        assert a.curve == b.curve
        assert all(torch.equal(a.checkpoints[1.0][k], b.checkpoints[1.0][k]) for k in a.checkpoints[1.0])


@pytest.mark.parametrize("half_life", [0, -0.1, 0.6])
def test_a_half_life_outside_its_range_is_refused_naming_the_field(half_life):
    cfg = {"studies": {"s": {**BASE, "to_target": {"kind": "value", "value": 0.5, "cap": {"unit": "epochs", "amount": 1},
                                                  "weight_averaging": {"half_life": half_life}}}}}
    with pytest.raises(ConfigError, match=r"to_target\.weight_averaging\.half_life"):
        validate_config(cfg, source="config.yaml")


def test_without_averaging_the_record_says_so(view_and_data):
    view, data = view_and_data
    got = train_run(view, data, 8, 0, CPU, (1.0,), stop_at=StopAt(1e-9))
    assert math.isnan(got.record["average_half_life"])
