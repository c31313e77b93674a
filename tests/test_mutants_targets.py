"""Known answers for the targets (batchlab.analysis.targets) where mutation testing found gaps: the run keys, a
best run exactly at the baseline, the refusals' messages, and the baselines of the linear and quadratic learners,
of a contrastive encoder (none) and in float64."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.targets import constant_prediction_loss, curve_ends, resolve_target, stop_target
from batchlab.config import ContrastiveEncoder, ConvAE, DiagonalQuadratic, LinearRegression
from batchlab.data import PARTS, Dataset

CURVES = pd.DataFrame({"batch_size": [1, 1, 1, 2, 2, 2], "seed": [0] * 6, "step": [1, 3, 5, 1, 3, 5],
                       "val_loss": [1.0, 0.4, 0.2, 0.8, 0.6, 0.5]})  # initial mean 0.9, best final 0.2


def dataset(x, y, parts) -> Dataset:
    return Dataset(
        x=np.asarray(x, dtype=np.float32), labels={"y": np.asarray(y)}, tasks={"y": "regression"}, target="y",
        split=np.array([PARTS[p] for p in parts], dtype=np.int8), name="toy", synthetic=True, description="",
    )


def test_the_run_keys_say_which_rows_are_one_run():
    """Two studies with the same batch size and seed: as two runs, initial mean(1.0, 0.6) = 0.8 and best 0.3, so half
    the improvement is 0.55; read as one run (first 1.0, last 0.3) it would be 0.65."""
    curves = pd.DataFrame({"study": ["a", "a", "b", "b"], "batch_size": [4] * 4, "seed": [0] * 4,
                           "step": [1, 2, 1, 2], "val_loss": [1.0, 0.5, 0.6, 0.3]})
    keys = ("study", "batch_size", "seed")
    assert curve_ends(curves, "val_loss", keys) == pytest.approx((0.8, 0.3), rel=1e-12)
    assert resolve_target(curves, "val_loss", "fraction", 0.5, run_keys=keys) == pytest.approx(0.55, rel=1e-12)


def test_no_finite_initial_value_is_refused():
    curves = CURVES.assign(val_loss=np.where(CURVES["step"] == 1, np.nan, CURVES["val_loss"]))
    with pytest.raises(ValueError, match=r"^no finite 'val_loss' values to resolve the target$"):
        curve_ends(curves, "val_loss")


def test_the_refusals_of_resolve_target_word_for_word():
    with pytest.raises(ValueError, match=r"^target kind must be one of value, fraction, within_best, baseline_fraction, "
                       r"got 'best'$"):
        resolve_target(CURVES, "val_loss", "best", 0.5)
    with pytest.raises(ValueError, match=r"^a baseline_fraction target needs the data's baseline loss$"):
        resolve_target(CURVES, "val_loss", "baseline_fraction", 0.5)
    message = (r"^the best run's final val_loss \(0.2\) is not below the data's baseline 0.2 \(the best constant "
               r"prediction\): a baseline_fraction target is undefined; choose another steps_to_target.kind$")
    with pytest.raises(ValueError, match=message):  # the best run exactly at the baseline is not below it
        resolve_target(CURVES, "val_loss", "baseline_fraction", 0.5, baseline=0.2)


def test_the_refusals_of_stop_target_word_for_word():
    with pytest.raises(ValueError, match=r"^a pilot_fraction target needs the data's baseline loss$"):
        stop_target("pilot_fraction", 0.5, pilot=0.3)
    with pytest.raises(ValueError, match=r"^to_target.kind must be value, baseline_ratio or pilot_fraction, got "
                       r"'ratio'$"):
        stop_target("ratio", 0.5, baseline=1.0)
    with pytest.raises(ValueError, match=r"^a pilot_fraction target needs the pilot's final validation loss, and it is "
                       r"not finite$"):
        stop_target("pilot_fraction", 0.5, baseline=1.0)
    message = (r"^the pilot's final validation loss \(0.9, the fixed-budget sweep's smallest batch size\) is not below "
               r"the data's baseline 0.8 \(the best constant prediction\): a pilot_fraction target is undefined; use "
               r"kind value or baseline_ratio, or a longer budget$")
    with pytest.raises(ValueError, match=message):
        stop_target("pilot_fraction", 0.5, baseline=0.8, pilot=0.9)


def test_a_contrastive_encoder_has_no_baseline():
    data = dataset(np.zeros((5, 2)), np.zeros(5), ("train",) * 4 + ("val",))
    with pytest.raises(ValueError, match=r"^a contrastive loss has no constant prediction: the data define no baseline "
                       r"for it$"):
        constant_prediction_loss(data, ContrastiveEncoder(kind="contrastive"), "val")


def test_the_linear_learners_baseline_is_half_the_squared_error_of_the_training_mean():
    """Training y 0.1, 0.2, 0.3, 0.7 stored as float32, validation y 0 and 0.5: the training mean of the stored values
    and the half squared errors worked in float64, to 1e-12 (a float32 mean is off by about 1e-8)."""
    y = np.array([0.1, 0.2, 0.3, 0.7, 0.0, 0.5], dtype=np.float32)
    data = dataset(np.ones((6, 2)), y, ("train",) * 4 + ("val",) * 2)
    stored = y.astype(np.float64)
    expected = float((0.5 * (stored[4:] - stored[:4].mean()) ** 2).mean())
    assert constant_prediction_loss(data, LinearRegression(kind="linear"), "val") == pytest.approx(expected, rel=1e-12)


def test_the_quadratics_baseline_is_its_loss_at_zero():
    """The zero model on z = (1, 2), (3, -1) and (0, 2), h = (1, 2^-1.5): 0.5 sum_j h_j z_j^2, the mean of the three."""
    data = dataset([[5.0, 5.0], [5.0, 5.0], [1.0, 2.0], [3.0, -1.0], [0.0, 2.0]], np.zeros(5),
                   ("train",) * 2 + ("val",) * 3)
    h2 = 2.0**-1.5
    expected = (0.5 * (1 + 4 * h2) + 0.5 * (9 + h2) + 0.5 * (4 * h2)) / 3
    assert constant_prediction_loss(data, DiagonalQuadratic(kind="quadratic"), "val") == pytest.approx(expected, rel=1e-12)


def test_an_mse_baseline_is_computed_in_float64():
    """Features stored as float32 (0.1 is 0.100000001490116...): the feature means and the squared errors of the
    stored values, worked in float64, to 1e-12 (float32 arithmetic is off by about 1e-8)."""
    train = np.array([[0.1, 0.7], [0.3, 0.2], [0.7, 0.9]], dtype=np.float32)
    val = np.array([[0.9, 0.1]], dtype=np.float32)
    data = dataset(np.vstack([train, val]), np.zeros(4), ("train",) * 3 + ("val",))
    means = train.astype(np.float64).mean(axis=0)
    expected = float(((val.astype(np.float64)[0] - means) ** 2).mean())
    got = constant_prediction_loss(data, ConvAE(kind="conv_ae", output="linear", loss="mse"), "val")
    assert got == pytest.approx(expected, rel=1e-12)
