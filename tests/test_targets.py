"""Target kinds of steps-to-target, and the data's own baseline loss, on cases worked by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.config import ConvAE, DenseAE, MLPClassifier, StepsToTarget, Study
from batchlab.data import PARTS, Dataset
from batchlab.analysis.targets import constant_prediction_loss, resolve_target

CURVES = pd.DataFrame(
    {
        "batch_size": [1, 1, 1, 2, 2, 2],
        "seed": [0] * 6,
        "step": [1, 3, 5, 1, 3, 5],
        "val_loss": [1.0, 0.4, 0.2, 0.8, 0.6, 0.5],
    }
)  # initial: mean(1.0, 0.8) = 0.9; best final: 0.2


def dataset(x, y=None, parts=("train",) * 4 + ("val",)) -> Dataset:
    x = np.asarray(x, dtype=np.float32)
    y = np.zeros(len(x), dtype=np.int64) if y is None else np.asarray(y)
    return Dataset(
        x=x, labels={"label": y}, tasks={"label": "classification"}, target="label",
        split=np.array([PARTS[p] for p in parts], dtype=np.int8), name="toy", synthetic=True, description="",
    )


def test_target_kinds_on_known_curves():
    assert resolve_target(CURVES, "val_loss", "value", 0.3) == 0.3
    assert resolve_target(CURVES, "val_loss", "fraction", 0.5) == pytest.approx(0.55)
    # at a share other than 1/2 a reversed direction shows: a quarter of the way from 0.9 down to 0.2, not up from 0.2
    assert resolve_target(CURVES, "val_loss", "fraction", 0.25) == pytest.approx(0.725, rel=1e-12)
    assert resolve_target(CURVES, "val_loss", "within_best", 0.1) == pytest.approx(0.22)
    # baseline 0.6, best 0.2: 75% of the way from the baseline to the best run
    assert resolve_target(CURVES, "val_loss", "baseline_fraction", 0.75, baseline=0.6) == pytest.approx(0.3)


def test_a_baseline_target_needs_a_baseline_the_runs_beat():
    with pytest.raises(ValueError, match="needs the data's baseline"):
        resolve_target(CURVES, "val_loss", "baseline_fraction", 0.5)
    with pytest.raises(ValueError, match="is not below the data.s baseline 0.15"):
        resolve_target(CURVES, "val_loss", "baseline_fraction", 0.5, baseline=0.15)


def test_bce_baseline_is_the_feature_means_cross_entropy():
    train = [[1, 0], [1, 1], [0, 0], [1, 0]]  # counts 3 and 1 of 4: means with half an observation each 3.5/5, 1.5/5
    data = dataset(train + [[1, 1]])
    expected = -(math.log(0.7) + math.log(0.3)) / 2
    spec = DenseAE(kind="dense_ae", output="sigmoid", loss="bce")
    assert constant_prediction_loss(data, spec, "val") == pytest.approx(expected, rel=1e-6)
    # on the training split itself: the cross-entropy of the features' frequencies 3/4, 1/4 against 0.7, 0.3
    cross = -(0.75 * math.log(0.7) + 0.25 * math.log(0.3) + 0.25 * math.log(0.3) + 0.75 * math.log(0.7)) / 2
    assert constant_prediction_loss(data, spec, "train") == pytest.approx(cross, rel=1e-6)


def test_a_feature_never_seen_in_training_costs_a_finite_loss():
    data = dataset([[1, 0]] * 4 + [[1, 1]])  # the second feature is 0 in all 4 training rows
    expected = -(math.log(4.5 / 5) + math.log(0.5 / 5)) / 2
    assert constant_prediction_loss(data, DenseAE(kind="dense_ae"), "val") == pytest.approx(expected, rel=1e-6)


def test_mse_baselines_of_linear_and_sigmoid_outputs():
    train = [[0.0, 0.2], [0.4, 0.2], [0.2, 0.6], [0.2, 0.2]]  # means 0.2, 0.3
    data = dataset(train + [[0.5, 0.1]])
    expected = ((0.5 - 0.2) ** 2 + (0.1 - 0.3) ** 2) / 2
    for output in ("linear", "sigmoid"):
        spec = ConvAE(kind="conv_ae", output=output, loss="mse")
        assert constant_prediction_loss(data, spec, "val") == pytest.approx(expected, rel=1e-5)


def test_classifier_baseline_predicts_the_class_frequencies():
    data = dataset(np.zeros((6, 3)), y=[0, 0, 0, 1, 2, 1], parts=("train",) * 4 + ("val",) * 2)
    # training labels 0, 0, 0, 1: counts 3, 1, 0, each with half an observation more: 3.5/5.5, 1.5/5.5, 0.5/5.5;
    # validation labels 2, 1
    expected = -(math.log(0.5 / 5.5) + math.log(1.5 / 5.5)) / 2
    assert constant_prediction_loss(data, MLPClassifier(kind="mlp"), "val") == pytest.approx(expected, rel=1e-6)


def test_baseline_target_is_refused_for_a_contrastive_study():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="baseline_fraction"):
        Study.model_validate({
            "data": {"name": "mnist1d", "n_samples": 300}, "model": {"kind": "contrastive"},
            "budget": {"unit": "epochs", "amount": 1}, "batch_sizes": [4],
            "steps_to_target": {"kind": "baseline_fraction", "value": 0.5},
        })
    with pytest.raises(ValidationError, match="must be in"):
        StepsToTarget(kind="baseline_fraction", value=1.5)
    assert "within 10%" in StepsToTarget(kind="within_best", value=0.1).describe()
