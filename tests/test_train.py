"""The reference trainer: determinism, the fixed data budget, the paired design, lr rules, divergence."""

import math

import numpy as np
import pytest
import torch

from batchlab.config import Optim, Study
from batchlab.data import Dataset
from batchlab.training.schedule import lr_at, scaled_lr, warmup_steps
from batchlab.training.reference import log_spaced_steps, sample_stream, train_run

CPU = torch.device("cpu")


def toy_data(n=120, f=20, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = (rng.random((n, f)) < 0.3).astype(np.float32)
    y = rng.integers(0, 2, n)
    split = np.zeros(n, dtype=np.int8)
    split[-20:-10], split[-10:] = 1, 2
    return Dataset(
        x=x, labels={"y": y}, tasks={"y": "classification"}, target="y", split=split,
        name="toy", synthetic=True, description="toy",
    )


def toy_study(**overrides) -> Study:
    spec = dict(
        data={"name": "digits"}, model={"kind": "dense_ae", "hidden": [16], "latent": 4},
        budget={"unit": "epochs", "amount": 2}, batch_sizes=[1, 4, 32], seeds=[0, 1], curve_points=8,
    )
    spec.update(overrides)
    return Study.model_validate(spec)


def test_same_seed_gives_bitwise_same_run():
    a = train_run(toy_study(), toy_data(), 4, 0, CPU, (1.0,))
    b = train_run(toy_study(), toy_data(), 4, 0, CPU, (1.0,))
    for key in ["train_loss", "val_loss", "test_loss", "steps"]:
        assert a.record[key] == b.record[key]
    assert a.curve == b.curve
    assert np.array_equal(a.embeddings, b.embeddings)
    for k in a.checkpoints[1.0]:
        assert torch.equal(a.checkpoints[1.0][k], b.checkpoints[1.0][k])


def test_other_seed_gives_other_run():
    a = train_run(toy_study(), toy_data(), 4, 0, CPU)
    b = train_run(toy_study(), toy_data(), 4, 1, CPU)
    assert a.record["val_loss"] != b.record["val_loss"]


def test_fixed_budget_means_same_samples_and_same_start():
    data, study = toy_data(), toy_study()
    runs = {b: train_run(study, data, b, 0, CPU, (0.0,)) for b in (1, 4, 32)}
    n_train = 100
    for b, run in runs.items():
        assert run.record["steps"] == round(2 * n_train / b)
        assert abs(run.record["samples_seen"] - 2 * n_train) <= b / 2
    init = [run.checkpoints[0.0] for run in runs.values()]
    for k in init[0]:
        assert all(torch.equal(init[0][k], other[k]) for other in init[1:])


def test_training_lowers_the_loss():
    run = train_run(toy_study(budget={"unit": "epochs", "amount": 20}), toy_data(), 8, 0, CPU)
    assert run.curve[-1]["val_loss"] < 0.9 * run.curve[0]["val_loss"]


def test_fixed_steps_mode():
    run = train_run(toy_study(budget={"unit": "steps", "amount": 7}), toy_data(), 32, 0, CPU)
    assert run.record["steps"] == 7 and run.record["samples_seen"] == 7 * 32


def test_divergence_is_recorded_not_raised():
    study = toy_study(optim={"name": "sgd", "lr": 1e12}, model={"kind": "dense_ae", "hidden": [16], "latent": 4,
                                                              "output": "linear", "loss": "mse"})
    run = train_run(study, toy_data(), 4, 0, CPU)
    assert run.record["diverged"] and run.record["diverged_step"] >= 1
    assert math.isnan(run.record["val_loss"])


def test_log_spaced_steps():
    steps = log_spaced_steps(10_000, 40)
    assert steps[0] == 1 and steps[-1] == 10_000 and len(steps) <= 40
    ratios = np.diff(np.log(steps[5:]))
    assert ratios.max() < 3 * ratios.min()
    assert log_spaced_steps(3, 40) == [1, 2, 3]


def test_sample_stream_is_consecutive_permutations():
    stream = sample_stream(10, 25, np.random.default_rng(0))
    assert len(stream) == 25
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))


@pytest.mark.parametrize(
    "rule, batch, expected", [("fixed", 128, 0.1), ("linear", 128, 0.4), ("sqrt", 128, 0.2), ("linear", 8, 0.025)]
)
def test_lr_scaling_rules(rule, batch, expected):
    assert scaled_lr(Optim(lr=0.1, lr_rule=rule, base_batch_size=32), batch) == pytest.approx(expected)


def test_warmup_is_linear_then_constant():
    o = Optim(warmup=0.1)
    n = warmup_steps(o, 200)
    assert n == 20
    assert [lr_at(s, 1.0, n) for s in (1, 10, 20, 21, 200)] == [0.05, 0.5, 1.0, 1.0, 1.0]


def test_classifier_learns_digits_and_reports_accuracy():
    from batchlab.data import make_dataset

    study = Study.model_validate(
        {
            "data": {"name": "digits"}, "model": {"kind": "mlp", "hidden": [64], "latent": 32},
            "budget": {"unit": "epochs", "amount": 3}, "batch_sizes": [16], "seeds": [0],
        }
    )
    data = make_dataset(study.data)
    run = train_run(study, data, 16, 0, CPU)
    rec = run.record
    assert rec["test_accuracy"] > 0.8  # chance is 0.1
    assert rec["accuracy_gap"] == pytest.approx(rec["train_accuracy"] - rec["test_accuracy"])
    assert rec["generalization_gap"] == pytest.approx(rec["test_loss"] - rec["train_loss"])
    assert rec["distance_from_init"] > 0 and rec["sharpness"] > 0
    assert run.embeddings.shape == (len(data.x), 32)


def test_classifier_on_a_regression_target_is_refused():
    with pytest.raises(ValueError, match="is a classifier, but the data's label is a regression target"):
        Study.model_validate(
            {
                "data": {"name": "phantom_mri", "label": "position"}, "model": {"kind": "cnn"},
                "budget": {"unit": "epochs", "amount": 1}, "batch_sizes": [16],
            }
        )
