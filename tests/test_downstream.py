"""Downstream SVM protocol on cases with known answers."""

import numpy as np
import pytest

from batchlab.config import Downstream
from batchlab.downstream import evaluate_baselines, evaluate_embeddings, folds

SPEC = Downstream(folds=5)


def test_separable_embedding_scores_near_one_and_noise_near_half():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    good = rng.normal(size=(200, 4)) + 3 * y[:, None]
    noise = rng.normal(size=(200, 4))
    table = evaluate_embeddings(np.stack([good, noise]), [{"run": 0}, {"run": 1}], y, "classification", SPEC)
    assert table.loc[0, "roc_auc_mean"] > 0.99 and table.loc[0, "accuracy_mean"] > 0.95
    assert abs(table.loc[1, "roc_auc_mean"] - 0.5) < 0.15
    assert (table["embedding"] == "autoencoder").all()


def test_multiclass_auc_and_regression():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 60)
    z = rng.normal(size=(180, 3)) + 4 * np.eye(3)[y]
    cls = evaluate_embeddings(z[None], [{}], y, "classification", SPEC)
    assert cls.loc[0, "roc_auc_mean"] > 0.98
    x = rng.normal(size=(200, 3))
    target = x @ np.array([1.0, -2.0, 0.5])
    reg = evaluate_embeddings(x[None], [{}], target, "regression", Downstream(folds=5, kernel="linear"))
    assert reg.loc[0, "r2_mean"] > 0.95


def test_nonfinite_embedding_is_marked_not_scored():
    y = np.repeat([0, 1], 20)
    z = np.full((1, 40, 2), np.nan)
    table = evaluate_embeddings(z, [{"seed": 0}], y, "classification", SPEC)
    assert not table.loc[0, "evaluated"]


def test_folds_are_fixed_and_stratified():
    y = np.repeat([0, 1], [30, 70])
    a, b = folds(y, "classification", 5), folds(y, "classification", 5)
    assert all(np.array_equal(ta, tb) for (ta, _), (tb, _) in zip(a, b))
    assert all(np.mean(y[test]) == pytest.approx(0.7) for _, test in a)


def test_baselines_raw_and_pca():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 50)
    x = rng.normal(size=(100, 10)) + 2 * y[:, None]
    table = evaluate_baselines(x, y, "classification", SPEC, latent=3)
    assert list(table["embedding"]) == ["raw", "pca"]
    assert (table["roc_auc_mean"] > 0.95).all()
